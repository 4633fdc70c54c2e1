"""``aiops approve``, ``aiops reject``, ``aiops executions``, ``aiops runbooks request``: decide on executions, follow
them, and ask for one, from the command line.

Decisions and requests are checked against the document store first (the ``executions`` collection the action
worker keeps) and then published on ``approvals``, where the action worker applies its approval policy to them.
"""

from __future__ import annotations

import asyncio
import getpass
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

if TYPE_CHECKING:
    from aiops_common.documents import DocumentStore
    from aiops_common.schemas import ApprovalRecord, ExecutionRecord
    from aiops_common.schemas.actions import ParamValue

    from aiops_action.runbooks import Runbook
    from aiops_action.settings import ActionSettings

__all__ = ["approve", "executions", "reject", "request"]

T = TypeVar("T")

executions = typer.Typer(help="List and show runbook executions: proposed, approved, run, verified, rolled back.")

_BY = typer.Option("--by", help="Who decides; default: the current user.")


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=code)


def _settings() -> ActionSettings:
    from aiops_action.settings import ActionSettings

    return ActionSettings()


def _run(settings: ActionSettings, use: Callable[[DocumentStore], Awaitable[T]]) -> T:
    from aiops_common.documents import open_document_store
    from aiops_common.store_access import StoreUnreachableError, with_store

    try:
        return with_store(
            open_document_store, settings.documents_url, use, "the document store", ("sqlite3", "elasticsearch")
        )
    except StoreUnreachableError as exc:
        raise _fail(str(exc)) from None


def _execution(settings: ActionSettings, execution_id: str) -> ExecutionRecord:
    """The stored execution, or exit 1 saying there is none."""
    from aiops_common.schemas import ExecutionRecord

    async def use(store: DocumentStore) -> dict[str, Any] | None:
        doc = await store.get("executions", execution_id)
        return None if doc is None else doc.body

    body = _run(settings, use)
    if body is None:
        raise _fail(f"no execution {execution_id!r} in {settings.documents_url} (`aiops executions list` shows them)")
    return ExecutionRecord.from_document(body)


def _publish(settings: ActionSettings, record: ApprovalRecord) -> None:
    from aiops_common.broker.publisher import BrokerUnavailableError, Message
    from aiops_common.run_state import PlatformNotRunningError, publish_to_platform
    from aiops_common.topics import Topics

    message = Message(Topics.APPROVALS, record.encode(), key=record.key())
    try:
        asyncio.run(publish_to_platform(settings, [message]))
    except (PlatformNotRunningError, BrokerUnavailableError) as exc:
        raise _fail(f"nothing was sent: {exc}") from None


def _decide(execution_id: str, decision: str, comment: str, by: str | None) -> None:
    from aiops_common.approvals import DecisionError, approvals_needed, check_decision
    from aiops_common.schemas import ApprovalDecision, ApprovalRecord

    who = (by if by is not None else getpass.getuser()).strip()
    if not who or len(who) > 200:
        raise _fail("--by must name someone (1 to 200 characters)", 2)
    if len(comment) > 2000:
        raise _fail(f"--comment is {len(comment)} characters; at most 2000", 2)
    settings = _settings()
    record = _execution(settings, execution_id)
    now = datetime.now(UTC)
    approval = ApprovalRecord(
        decision=ApprovalDecision(decision),
        execution_id=record.id,
        incident_id=record.incident_id,
        runbook_id=record.runbook_id,
        by=who,
        role="admin",
        via="cli",
        at=now,
        comment=comment,
    )
    # the rules the worker applies, so that a decision it would refuse is refused here, with its reason
    try:
        check_decision(record, who, approval.decision, now)
    except DecisionError as exc:
        raise _fail(str(exc)) from None
    _publish(settings, approval)
    if decision == "approve":
        have = len(record.approvers()) + 1
        more = approvals_needed(record, approving=True)
        after = f"; it needs {more} more" if more else "; the worker runs it once its policy agrees"
        typer.echo(f"{record.id}: approved by {who} ({have} of {record.required_approvals}){after}")
    else:
        typer.echo(f"{record.id}: rejected by {who}")


def approve(
    execution_id: Annotated[str, typer.Argument(help="The execution (`aiops executions list`).")],
    comment: Annotated[str, typer.Option("--comment", help="Why, for the audit log.")] = "",
    by: Annotated[str | None, _BY] = None,
) -> None:
    """Approve an execution waiting for approval (the requester cannot approve their own; a high blast radius needs
    two different people)."""
    _decide(execution_id, "approve", comment, by)


def reject(
    execution_id: Annotated[str, typer.Argument(help="The execution (`aiops executions list`).")],
    comment: Annotated[str, typer.Option("--comment", help="Why it must not run (required).")],
    by: Annotated[str | None, _BY] = None,
) -> None:
    """Reject an execution waiting for approval: it will not run."""
    if not comment.strip():
        raise _fail("--comment must say why the execution is rejected", 2)
    _decide(execution_id, "reject", comment, by)


# -- aiops executions ----------------------------------------------------------------------------------------------


def _when(at: datetime | None) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if at is not None else "-"


@executions.command("list")
def list_executions(
    incident: Annotated[str | None, typer.Option("--incident", help="Only this incident's executions.")] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="pending_approval, running, succeeded, rolled_back, ...")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="At most this many, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array of the executions as stored.")] = False,
) -> None:
    """List executions from the document store (AIOPS_DOCUMENTS_URL), newest first."""
    from aiops_common.documents import DocumentFilter
    from aiops_common.schemas import ExecutionRecord, ExecutionStatus

    if status is not None and status not in {s.value for s in ExecutionStatus}:
        raise _fail(f"no status {status!r}; one of {', '.join(s.value for s in ExecutionStatus)}", 2)
    where = DocumentFilter(status=status, terms=(("incident_id", incident),) if incident else ())

    async def use(store: DocumentStore) -> list[dict[str, Any]]:
        await store.refresh("executions")
        page = await store.query("executions", where, limit=limit)
        return [doc.body for doc in page.documents]

    bodies = _run(_settings(), use)
    if as_json:
        typer.echo(json.dumps(bodies, indent=2))
        return
    if not bodies:
        typer.echo("no executions" + (f" for {incident}" if incident else "") + (f" {status}" if status else ""))
        return
    records = [ExecutionRecord.from_document(body) for body in bodies]
    width = max(len(r.id) for r in records) + 2  # ids are never cut: they are what approve and show take
    typer.echo(f"{'ID':<{width}}{'STATUS':<18}{'RUNBOOK':<26}{'INCIDENT':<24}{'APPROVALS':<11}REQUESTED")
    for r in records:
        approvals = "auto" if r.auto_approved else f"{len(r.approvers())}/{r.required_approvals}"
        typer.echo(
            f"{r.id:<{width}}{r.status.value:<18}{r.runbook_id[:25]:<26}{r.incident_id[:23]:<24}{approvals:<11}"
            f"{_when(r.requested_at)} by {r.requested_by}"
        )


def _flat(text: str) -> str:
    # one line per fact: a newline in a step's output cannot forge another line of the view
    return " ".join(text.split())


def _describe(r: ExecutionRecord) -> list[str]:
    lines = [
        f"execution  {r.id}",
        f"runbook    {r.runbook_id} v{r.runbook_version}" + (f" ({_flat(r.title)})" if r.title else ""),
        f"incident   {r.incident_id} (attempt {r.attempt})",
        f"status     {r.status.value}",
        f"risk       {r.risk}",
        f"blast      {r.blast_radius.describe()}",
    ]
    if r.blast_radius.reasons:
        lines.append(f"           high because: {_flat('; '.join(r.blast_radius.reasons))}")
    if r.blast_radius.missing:
        lines.append(f"           topology unread: {_flat(r.blast_radius.missing)}")
    if r.cause_service:
        lines.append(f"cause      {r.cause_service} ({r.cause_kind or 'unknown'}, rank {r.cause_rank})")
    if r.rca_id:
        lines.append(f"ranking    {r.rca_id} (incident revision {r.rca_revision})")
    if r.replaces:
        lines.append(f"replaces   {r.replaces} (superseded by the newer ranking)")
    if r.superseded_by:
        lines.append(f"superseded by {r.superseded_by} (a newer ranking); approvals given here do not carry over")
    if r.parameters:
        params = ", ".join(
            f"{k}={v!r}" + (f" (from {r.parameter_sources[k]})" if k in r.parameter_sources else "")
            for k, v in sorted(r.parameters.items())
        )
        lines.append(f"parameters {_flat(params)}")
    lines.append(f"requested  {_when(r.requested_at)} by {r.requested_by}" + (f": {_flat(r.note)}" if r.note else ""))
    if r.expires_at is not None and r.status.value == "pending_approval":
        lines.append(f"expires    {_when(r.expires_at)}")
    approvals = "approved by the policy" if r.auto_approved else f"{len(r.approvers())} of {r.required_approvals}"
    lines.append(f"approvals  {approvals}" + (f" ({_flat(r.policy)})" if r.policy else ""))
    for d in r.approvals:
        comment = f": {_flat(d.comment)}" if d.comment else ""
        via = f" via {d.via}" if d.via else ""
        lines.append(f"  {d.decision:<8} {d.by}{via} at {_when(d.at)}{comment}")
    for title, steps in (("dry run", r.dry_run), ("steps", r.steps), ("rollback", r.rollback)):
        if not steps:
            continue
        lines.append(title)
        for s in steps:
            summary = f": {_flat(s.summary)}" if s.summary else ""
            lines.append(f"  [{s.state.value:<7}] {s.name} ({s.kind} {s.action}){summary}")
    v = r.verification
    if v is not None:
        band = f"[{'-inf' if v.lower is None else f'{v.lower:g}'}, {'inf' if v.upper is None else f'{v.upper:g}'}]"
        outcome = {True: "recovered", False: "not recovered", None: "pending"}[v.recovered]
        lines.append(f"verify     {v.series} in {band} for {v.for_s:g}s within {v.within_s:g}s: {outcome}")
        if v.detail:
            lines.append(f"           {_flat(v.detail)}")
    if r.error:
        lines.append(f"error      {_flat(r.error)}")
    if r.history:
        lines.append("history")
        for t in r.history:
            note = f": {_flat(t.note)}" if t.note else ""
            lines.append(f"  {_when(t.at)}  {t.status:<17} {t.by}{note}")
    return lines


@executions.command("show")
def show_execution(
    execution_id: Annotated[str, typer.Argument(help="The execution (`aiops executions list`).")],
    as_json: Annotated[bool, typer.Option("--json", help="The execution as stored, one JSON object.")] = False,
) -> None:
    """One execution: runbook, status, blast radius, approvals, dry run, steps, verification, history."""
    from aiops_common.schemas import execution_document

    record = _execution(_settings(), execution_id)
    if as_json:
        typer.echo(json.dumps(execution_document(record), indent=2))
        return
    for line in _describe(record):
        typer.echo(line)


# -- aiops runbooks request ----------------------------------------------------------------------------------------


def _parse_params(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise _fail(f"--param {pair!r} is not NAME=VALUE", 2)
        if name.strip() in out:
            raise _fail(f"--param {name.strip()} is given twice", 2)
        out[name.strip()] = value
    return out


def _typed(kind: str, name: str, text: str) -> ParamValue:
    """A value of a runbook known only from the store: its declared type (the worker checks the rest)."""
    try:
        if kind == "integer":
            return int(text)
        if kind == "number":
            return float(text)
    except ValueError:
        raise _fail(f"--param {name}: {text!r} is not {'an integer' if kind == 'integer' else 'a number'}", 2) from None
    if kind == "boolean":
        if text.lower() not in ("true", "false"):
            raise _fail(f"--param {name}: {text!r} is not a boolean (true or false)", 2)
        return text.lower() == "true"
    return text


def _local_runbook(settings: ActionSettings, runbook_id: str) -> Runbook | None:
    from aiops_action.runbooks import load_folder, runbooks_dir

    return next((r for r in load_folder(runbooks_dir(settings)).runbooks if r.id == runbook_id), None)


def request(
    runbook_id: Annotated[str, typer.Argument(help="The runbook (`aiops runbooks list`).")],
    incident: Annotated[str, typer.Option("--incident", help="The incident it is for.")],
    param: Annotated[
        list[str] | None,
        typer.Option("--param", metavar="NAME=VALUE", help="A parameter's value (repeat for several)."),
    ] = None,
    note: Annotated[str, typer.Option("--note", help="Why, for the approvers and the audit log.")] = "",
    by: Annotated[str | None, typer.Option("--by", help="Who asks; default: the current user.")] = None,
) -> None:
    """Ask for a runbook to be run for an incident: the action worker proposes the execution (with its dry run and
    blast radius) and it waits for approval as its policy says."""
    from aiops_common.schemas import ApprovalDecision, ApprovalRecord

    from aiops_action.runbooks import ParameterError, check_value

    who = (by if by is not None else getpass.getuser()).strip()
    if not who or len(who) > 200:
        raise _fail("--by must name someone (1 to 200 characters)", 2)
    if len(note) > 2000:
        raise _fail(f"--note is {len(note)} characters; at most 2000", 2)
    given = _parse_params(param or [])
    settings = _settings()

    async def use(store: DocumentStore) -> tuple[dict[str, Any] | None, dict[str, Any] | None, list[str]]:
        from aiops_common.documents import DocumentFilter

        found = await store.get("incidents", incident)
        stored = await store.get("runbooks", runbook_id)
        where = DocumentFilter(status="pending_approval", terms=(("incident_id", incident), ("action", runbook_id)))
        pending = await store.query("executions", where, limit=5)
        return (
            None if found is None else found.body,
            None if stored is None else stored.body,
            [d.id for d in pending.documents],
        )

    incident_body, runbook_body, pending = _run(settings, use)
    if incident_body is None:
        raise _fail(f"no incident {incident!r} in {settings.documents_url} (`aiops incidents list` shows them)")
    if incident_body.get("status") == "resolved":
        raise _fail(f"incident {incident} is resolved; reopen it first (`aiops incidents reopen {incident}`)")
    if pending:
        raise _fail(f"{runbook_id} already waits for approval for {incident}: {', '.join(pending)}")
    local = _local_runbook(settings, runbook_id)
    if runbook_body is None and local is None:
        raise _fail(f"no runbook {runbook_id!r} (`aiops runbooks list` shows them)")
    if local is not None:
        types = {name: p.type.value for name, p in local.parameters.items()}
    else:
        raw = runbook_body.get("parameters") if runbook_body is not None else None
        types = {str(k): str(v.get("type", "string")) for k, v in raw.items()} if isinstance(raw, dict) else {}
    values: dict[str, ParamValue] = {}
    for name, text in given.items():
        if name not in types:
            known = ", ".join(sorted(types)) or "none"
            raise _fail(f"--param {name}: {runbook_id} has no such parameter (it has: {known})", 2)
        if local is not None:
            try:
                values[name] = check_value(local.parameters[name], text)
            except ParameterError as exc:
                raise _fail(f"--param {name}: {exc}", 2) from None
        else:
            values[name] = _typed(types[name], name, text)
    record = ApprovalRecord(
        decision=ApprovalDecision.REQUEST,
        incident_id=incident,
        runbook_id=runbook_id,
        parameters=values,
        by=who,
        role="admin",
        via="cli",
        at=datetime.now(UTC),
        comment=note,
    )
    _publish(settings, record)
    typer.echo(
        f"requested {runbook_id} for {incident} by {who}: `aiops executions list --incident {incident}` follows it"
    )
