"""``aiops incidents``: list and show incidents from the document store; change their lifecycle and membership."""

from __future__ import annotations

import asyncio
import getpass
import json
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from aiops_common.schemas import IncidentRecord

    from aiops_correlation.settings import CorrelationSettings

__all__ = ["group", "parse_since"]

group = typer.Typer(help="List and show correlated incidents; acknowledge, resolve, split and merge them.")

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=code)


def parse_since(text: str, now: datetime) -> datetime:
    """``30m``, ``6h``, ``7d`` back from ``now``, or an ISO-8601 time (UTC when it names no zone).

    >>> now = datetime(2026, 1, 2, tzinfo=UTC)
    >>> parse_since("6h", now).isoformat(), parse_since("2026-01-01T12:00", now).isoformat()
    ('2026-01-01T18:00:00+00:00', '2026-01-01T12:00:00+00:00')
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if match is not None:
        return now - timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"not a duration or a time: {text!r} (e.g. 30m, 6h, 7d, 2026-01-01T12:00)") from None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _settings() -> CorrelationSettings:
    from aiops_correlation.settings import CorrelationSettings

    return CorrelationSettings()


async def _query(
    settings: CorrelationSettings,
    status: str | None,
    since: datetime | None,
    service: str | None,
    severity: str | None,
    text: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    from aiops_common.documents import DocumentFilter, open_document_store

    store = open_document_store(settings.documents_url)
    try:
        where = DocumentFilter(start=since, status=status, service=service, severity=severity, text=text)
        page = await store.query("incidents", where, limit=limit)
        return [doc.body for doc in page.documents]
    finally:
        await store.close()


_ERROR_SEVERITIES = ("error", "fatal", "critical")


async def _error_logs(settings: CorrelationSettings, body: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    """Error lines of the incident's services in [onset - 15 min, onset + 15 min], oldest first."""
    from aiops_common.documents import DocumentFilter, open_document_store

    onset = datetime.fromisoformat(body["started_at"])
    store = open_document_store(settings.documents_url)
    lines: list[dict[str, Any]] = []
    try:
        for service in body.get("services", []):
            for severity in _ERROR_SEVERITIES:
                where = DocumentFilter(
                    start=onset - timedelta(minutes=15),
                    end=onset + timedelta(minutes=15),
                    service=service,
                    severity=severity,
                )
                page = await store.query("logs", where, oldest_first=True, limit=limit)
                lines.extend(doc.body for doc in page.documents)
    finally:
        await store.close()
    return sorted(lines, key=lambda line: str(line["at"]))[:limit]


async def _get(settings: CorrelationSettings, incident_id: str) -> dict[str, Any] | None:
    from aiops_common.documents import open_document_store

    store = open_document_store(settings.documents_url)
    try:
        doc = await store.get("incidents", incident_id)
        return None if doc is None else doc.body
    finally:
        await store.close()


def _ago(at: str, now: datetime) -> str:
    seconds = (now - datetime.fromisoformat(at)).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{max(int(seconds), 0)}s ago"


@group.command("list")
def list_incidents(
    status: Annotated[str | None, typer.Option(help="open, acknowledged, mitigated or resolved.")] = None,
    since: Annotated[str | None, typer.Option(help="Started since: 30m, 6h, 7d, or an ISO-8601 time.")] = None,
    service: Annotated[str | None, typer.Option(help="Affecting this service.")] = None,
    severity: Annotated[str | None, typer.Option(help="info, warning, minor, major or critical.")] = None,
    text: Annotated[str | None, typer.Option(help="Words in the title or summary.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array of the incidents as stored.")] = False,
) -> None:
    """List incidents from the document store (AIOPS_DOCUMENTS_URL), newest first."""
    from aiops_common.schemas import IncidentSeverity, IncidentStatus

    if status is not None and status not in {s.value for s in IncidentStatus}:
        raise _fail(f"no status {status!r}; one of {', '.join(s.value for s in IncidentStatus)}", 2)
    if severity is not None and severity not in {s.value for s in IncidentSeverity}:
        raise _fail(f"no severity {severity!r}; one of {', '.join(s.value for s in IncidentSeverity)}", 2)
    now = datetime.now(UTC)
    start = parse_since(since, now) if since else None
    bodies = asyncio.run(_query(_settings(), status, start, service, severity, text, limit))
    if as_json:
        typer.echo(json.dumps(bodies, indent=2))
        return
    if not bodies:
        typer.echo("no incidents")
        return
    typer.echo(f"{'ID':<28} {'STATUS':<12} {'SEVERITY':<9} {'STARTED':<10} {'MEMBERS':>7}  TITLE")
    for body in bodies:
        typer.echo(
            f"{body['id']:<28} {body['status']:<12} {body['severity']:<9} {_ago(body['started_at'], now):<10}"
            f" {len(body.get('members', [])):>7}  {body['title']}"
        )


def _show(incident: IncidentRecord) -> list[str]:
    lines = [
        f"{incident.id}  {incident.title}",
        f"status {incident.status.value}, severity {incident.severity.value}, revision {incident.revision}",
        f"started {incident.started_at.isoformat()}, updated {incident.updated_at.isoformat()}",
        f"services: {', '.join(incident.services)}",
    ]
    if incident.summary:
        lines.append(incident.summary)
    if incident.merged_into:
        lines.append(f"merged into {incident.merged_into}")
    if incident.changes:
        lines.append("changes:")
        lines.extend(f"  {c.text or f'{c.service} {c.kind} {c.version}'}  ({c.id})" for c in incident.changes)
    lines.append(f"members ({len(incident.members)}):")
    for m in incident.members:
        mark = "*" if m.lead else " "
        state = "resolved" if m.ended_at is not None else "firing"
        times = f" x{m.occurrences}" if m.occurrences > 1 else ""
        lines.append(f" {mark} {m.kind.value:<10} {m.service or '-':<16} {m.name}{times}  [{state}]  {m.fingerprint}")
        lines.append(f"      why: {m.reason.rule}: {m.reason.text}")
    for merge in incident.merged:
        lines.append(f"merged {merge.incident_id} at {merge.at.isoformat()}: {merge.reason}")
    for change in incident.history:
        lines.append(
            f"{change.at.isoformat()}  {change.status.value} by {change.by}{': ' + change.note if change.note else ''}"
        )
    return lines


@group.command("show")
def show(
    incident_id: Annotated[str, typer.Argument(help="The incident's id, as `aiops incidents list` shows it.")],
    as_json: Annotated[bool, typer.Option("--json", help="The incident as stored, in JSON (no log lines).")] = False,
    logs: Annotated[
        int, typer.Option(min=0, max=1000, help="Error log lines of its services around onset (+-15 min) to show.")
    ] = 10,
) -> None:
    """Show one incident: its members (the lead marked *) and why each joined, linked changes, history, and the
    error log lines of its services around onset."""
    from aiops_common.schemas import IncidentRecord

    settings = _settings()
    body = asyncio.run(_get(settings, incident_id))
    if body is None:
        raise _fail(f"no incident {incident_id!r} in {settings.documents_url}")
    if as_json:
        typer.echo(json.dumps(body, indent=2))
        return
    lines = asyncio.run(_error_logs(settings, body, logs)) if logs else []
    typer.echo("\n".join(_show(IncidentRecord.from_document(body))))
    if lines:
        typer.echo(f"error logs around onset ({len(lines)}):")
        for line in lines:
            typer.echo(f"  {line['at']}  {','.join(line.get('services', []))}  {line.get('message', '')}")


async def _held(settings: CorrelationSettings, since: datetime | None, service: str | None, limit: int) -> list[Any]:
    from aiops_common.documents import DocumentFilter, open_document_store

    store = open_document_store(settings.documents_url)
    try:
        page = await store.query("suppressed", DocumentFilter(start=since, service=service), limit=limit)
        return [doc.body for doc in page.documents]
    finally:
        await store.close()


@group.command("held")
def held(
    since: Annotated[str | None, typer.Option(help="Held since: 30m, 6h, 7d, or an ISO-8601 time.")] = None,
    service: Annotated[str | None, typer.Option(help="Of this service.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array of the held-back signals.")] = False,
) -> None:
    """Signals Dynamic-X-Y held back (flapping, or fewer than their learned X in Y): no incident, and why."""
    bodies = asyncio.run(_held(_settings(), parse_since(since, datetime.now(UTC)) if since else None, service, limit))
    if as_json:
        typer.echo(json.dumps(bodies, indent=2))
        return
    if not bodies:
        typer.echo("no held-back signals")
        return
    for body in bodies:
        typer.echo(f"{body['at']}  {body['kind']:<10} {','.join(body['services']) or '-':<16} {body['name']}")
        typer.echo(f"    {body['reason']}")


async def _send(topic_name: str, key: str, value: bytes, settings: CorrelationSettings) -> None:
    from aiops_common.broker.publisher import Message
    from aiops_common.run_state import PlatformNotRunningError, publish_to_platform
    from aiops_common.topics import Topics

    spec = {"feedback": Topics.FEEDBACK, "correlation.events": Topics.CORRELATION_EVENTS}[topic_name]
    try:
        await publish_to_platform(settings, [Message(spec, value, key=key.encode())])
    except PlatformNotRunningError as exc:
        raise _fail(str(exc)) from None


def _known(settings: CorrelationSettings, incident_id: str) -> dict[str, Any]:
    body = asyncio.run(_get(settings, incident_id))
    if body is None:
        raise _fail(f"no incident {incident_id!r} in {settings.documents_url} (`aiops incidents list` shows them)")
    return body


def _lifecycle(incident_id: str, status: str, note: str, by: str | None) -> None:
    from aiops_common.schemas import IncidentCommand, IncidentStatus

    from aiops_correlation.agents.event_router import KEY

    settings = _settings()
    _known(settings, incident_id)
    command = IncidentCommand(
        incident_id=incident_id,
        status=IncidentStatus(status),
        by=by or getpass.getuser(),
        at=datetime.now(UTC),
        note=note,
    )
    asyncio.run(_send("correlation.events", KEY.decode(), command.encode(), settings))
    typer.echo(f"{incident_id}: {status} by {command.by}")


_NOTE = typer.Option(help="Why, for the incident's history.")
_BY = typer.Option(help="Who; default: the current user.")


@group.command("ack")
def ack(incident_id: str, note: Annotated[str, _NOTE] = "", by: Annotated[str | None, _BY] = None) -> None:
    """Acknowledge an incident: someone is on it."""
    _lifecycle(incident_id, "acknowledged", note, by)


@group.command("mitigate")
def mitigate(incident_id: str, note: Annotated[str, _NOTE] = "", by: Annotated[str | None, _BY] = None) -> None:
    """Mark an incident mitigated: the impact is gone, the cause may not be."""
    _lifecycle(incident_id, "mitigated", note, by)


@group.command("resolve")
def resolve(incident_id: str, note: Annotated[str, _NOTE] = "", by: Annotated[str | None, _BY] = None) -> None:
    """Resolve an incident now (otherwise it resolves itself once every member has and it stays quiet)."""
    _lifecycle(incident_id, "resolved", note, by)


@group.command("reopen")
def reopen(incident_id: str, note: Annotated[str, _NOTE] = "", by: Annotated[str | None, _BY] = None) -> None:
    """Open a resolved incident again."""
    _lifecycle(incident_id, "open", note, by)


def _label(subject: str, related: str, label: str, note: str, by: str | None) -> str:
    from aiops_common.schemas import FeedbackLabel, FeedbackRecord

    record = FeedbackRecord(
        subject_id=subject,
        subject_kind="incident",
        related_id=related,
        label=FeedbackLabel(label),
        by=by or getpass.getuser(),
        at=datetime.now(UTC),
        note=note,
    )
    asyncio.run(_send("feedback", subject, record.encode(), _settings()))
    return record.id


@group.command("split")
def split(
    incident_id: str,
    fingerprint: Annotated[str, typer.Argument(help="The member that does not belong (its fingerprint).")],
    note: Annotated[str, _NOTE] = "",
    by: Annotated[str | None, _BY] = None,
) -> None:
    """Say a member does not belong in an incident: it leaves, and the correlator groups such pairs less."""
    body = _known(_settings(), incident_id)
    if not any(m["fingerprint"] == fingerprint for m in body.get("members", [])):
        raise _fail(f"incident {incident_id} has no member {fingerprint!r} (`aiops incidents show {incident_id}`)")
    feedback_id = _label(incident_id, fingerprint, "not_in_incident", note, by)
    typer.echo(f"{fingerprint} split off {incident_id} ({feedback_id})")


@group.command("merge")
def merge(
    incident_id: str,
    other_id: Annotated[str, typer.Argument(help="The incident that is the same one.")],
    note: Annotated[str, _NOTE] = "",
    by: Annotated[str | None, _BY] = None,
) -> None:
    """Say two incidents are one: they merge, and the correlator groups such pairs more."""
    if incident_id == other_id:
        raise _fail("an incident cannot be merged with itself", 2)
    settings = _settings()
    _known(settings, incident_id)
    _known(settings, other_id)
    feedback_id = _label(incident_id, other_id, "same_incident", note, by)
    typer.echo(f"{incident_id} and {other_id} merge into one incident ({feedback_id})")
