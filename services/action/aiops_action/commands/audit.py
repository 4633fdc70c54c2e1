"""``aiops audit``: check the hash-chained audit log for edits, deletions and reordering, and show recent entries."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

if TYPE_CHECKING:
    from aiops_common.audit import AuditReport
    from aiops_common.documents import DocumentStore

__all__ = ["group"]

T = TypeVar("T")

group = typer.Typer(help="Verify and read the append-only, hash-chained audit log.", no_args_is_help=True)


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=code)


def _run(use: Callable[[DocumentStore], Awaitable[T]]) -> T:
    from aiops_common.documents import open_document_store
    from aiops_common.settings import CommonSettings
    from aiops_common.store_access import StoreUnreachableError, with_store

    try:
        return with_store(
            open_document_store,
            CommonSettings().documents_url,
            use,
            "the document store",
            ("sqlite3", "elasticsearch"),
        )
    except StoreUnreachableError as exc:
        raise _fail(str(exc)) from None


@group.command("verify")
def verify(
    head: Annotated[
        str | None,
        typer.Option(
            "--head",
            metavar="SEQ:HASH",
            help="A head printed by an earlier verify: shows a tail cut off since, or a chain rewritten up to it.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object: entries, intact, head, problems.")] = False,
) -> None:
    """Recompute every entry's hash and link; exit 1 naming each kind of damage found (edited, deleted, reordered,
    truncated, rewritten) at its first entry.

    Keep the head it prints somewhere else and pass it next time with --head: only that shows entries cut off the end.
    """
    from aiops_common.audit import parse_head
    from aiops_common.audit import verify as verify_chain

    expected = None
    if head is not None:
        try:
            expected = parse_head(head)
        except ValueError as exc:
            raise _fail(str(exc), 2) from None

    async def use(store: DocumentStore) -> AuditReport:
        return await verify_chain(store, expected)

    report = _run(use)
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
    elif report.intact:
        where = f"head {report.head[0]} {report.head[1]}" if report.head else "no entries yet"
        typer.echo(f"{report.entries} entries, chain intact, {where}")
    else:
        typer.echo(f"{report.entries} entries, chain damaged:")
        for problem in report.problems:
            more = report.counts.get(problem.kind, 1) - 1
            also = f" (and {more} more)" if more > 0 else ""
            typer.echo(f"  {problem.kind} at entry {problem.seq}: {problem.message}{also}")
    if not report.intact:
        raise typer.Exit(code=1)


@group.command("show")
def show(
    subject: Annotated[
        str | None, typer.Option("--subject", help="Only entries about this subject (an incident, execution...).")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="How many entries, newest first.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array of the stored entries.")] = False,
) -> None:
    """The most recent entries of the audit log, newest first."""
    from aiops_common.audit import AUDIT_COLLECTION
    from aiops_common.documents import DocumentFilter

    where = DocumentFilter(terms=(("subject_id", subject),)) if subject else DocumentFilter()

    async def use(store: DocumentStore) -> list[dict[str, Any]]:
        await store.refresh(AUDIT_COLLECTION)
        page = await store.query(AUDIT_COLLECTION, where, limit=limit)
        return [d.body for d in page.documents]

    entries = _run(use)
    if as_json:
        typer.echo(json.dumps(entries, indent=2))
        return
    if not entries:
        typer.echo("no audit entries" + (f" about {subject}" if subject else ""))
        return
    typer.echo(f"{'SEQ':>6}  {'AT':<19}  {'ACTOR':<16}{'ACTION':<28}{'SUBJECT':<20}MESSAGE")
    for e in entries:
        at = str(e.get("at", ""))[:19].replace("T", " ")
        # One line per entry even when a message holds newlines (it may quote what an alert carried).
        message = " ".join(str(e.get("message") or "").split())
        typer.echo(
            f"{e.get('seq', '-')!s:>6}  {at:<19}  {str(e.get('actor', ''))[:15]:<16}"
            f"{str(e.get('action', ''))[:27]:<28}{str(e.get('subject_id', ''))[:19]:<20}{message}"
        )
