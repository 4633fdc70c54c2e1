"""``aiops rca show/confirm/reject``: an incident's stored ranking, and operators' word on its cause."""

from __future__ import annotations

import asyncio
import getpass
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from aiops_rca.commands._ranking import fail, iso, ranking_lines

if TYPE_CHECKING:
    from aiops_common.documents import DocumentStore
    from aiops_common.schemas import FeedbackRecord

    from aiops_rca.settings import RcaSettings

__all__ = ["confirm", "reject", "show"]

T = TypeVar("T")
RESULTS = "rca_results"
_INCIDENT = typer.Argument(help="The incident's id, as `aiops incidents list` shows it.")
# Modules whose exceptions mean the store could not be reached or read (SQLite, the Elasticsearch client).
_STORE_ERRORS = frozenset({"sqlite3", "elasticsearch", "elastic_transport", "aiohttp"})


def _settings() -> RcaSettings:
    from aiops_rca.settings import RcaSettings

    return RcaSettings()


def _with_documents(settings: RcaSettings, use: Callable[[DocumentStore], Awaitable[T]]) -> T:
    """Open AIOPS_DOCUMENTS_URL's store, run ``use`` on it, close it; a store that cannot be reached is one line."""
    from aiops_common.documents import open_document_store
    from aiops_common.store_access import StoreUnreachableError, with_store

    try:
        return with_store(open_document_store, settings.documents_url, use, "document store", _STORE_ERRORS)
    except StoreUnreachableError as exc:
        raise fail(str(exc)) from None


async def _latest(store: DocumentStore, incident_id: str) -> dict[str, Any] | None:
    """The stored result of the incident's highest revision analysed (the latest analysis of it on a tie)."""
    from aiops_common.documents import DocumentFilter

    where = DocumentFilter(terms=(("incident_id", incident_id),))
    best: dict[str, Any] | None = None
    cursor: str | None = None
    while True:
        page = await store.query(RESULTS, where, limit=100, cursor=cursor)
        for doc in page.documents:
            rank = (int(doc.body.get("incident_revision", 0)), str(doc.body.get("analyzed_at", "")))
            if best is None or rank > (int(best.get("incident_revision", 0)), str(best.get("analyzed_at", ""))):
                best = doc.body
        cursor = page.cursor
        if cursor is None:
            return best


def show(
    incident_id: Annotated[str, _INCIDENT],
    evidence: Annotated[int, typer.Option(min=0, help="Evidence lines per cause in the table.")] = 3,
    as_json: Annotated[
        bool, typer.Option("--json", help="The result as stored: status, onset, missing, causes best first.")
    ] = False,
) -> None:
    """Show the root causes ranked for an incident: the analysis of its latest revision (AIOPS_DOCUMENTS_URL)."""
    from aiops_common.schemas import RcaResult

    settings = _settings()
    body = _with_documents(settings, lambda store: _latest(store, incident_id))
    if body is None:
        raise fail(
            f"no RCA result for incident {incident_id!r} in {settings.documents_url}"
            " (not analysed yet, or not an incident id: `aiops incidents list` shows them)"
        )
    if as_json:
        typer.echo(json.dumps(body, indent=2))
        return
    result = RcaResult.from_document(body)
    head = f"{result.incident_id} revision {result.incident_revision}, analysed {iso(result.analyzed_at)}"
    lines = ranking_lines(
        result.causes,
        onset=result.onset,
        status=result.status.value,
        summary=result.summary,
        missing=result.missing,
        evidence=evidence,
    )
    typer.echo("\n".join([head, *lines]))


async def _considered(store: DocumentStore, incident_id: str) -> set[str] | None:
    """Services the incident and its analyses name (None: the store knows no such incident)."""
    incident = await store.get("incidents", incident_id)
    result = await _latest(store, incident_id)
    if incident is None and result is None:
        return None
    names: set[str] = set()
    if incident is not None:
        names.update(incident.body.get("services", []))
    if result is not None:
        names.update(result.get("services", []))
        names.update(c.get("service", "") for c in result.get("causes", []))
    return names


async def _publish(record: FeedbackRecord, settings: RcaSettings) -> None:
    from aiops_common.broker.publisher import Message
    from aiops_common.run_state import PlatformNotRunningError, publish_to_platform
    from aiops_common.topics import Topics

    try:
        # Keyed by the incident, as the topic keys labels by subject: every label on one incident stays in order.
        await publish_to_platform(settings, [Message(Topics.FEEDBACK, record.encode(), key=record.subject_id.encode())])
    except PlatformNotRunningError as exc:
        raise fail(str(exc)) from None


def _label(incident_id: str, service: str, label: str, note: str, by: str | None, force: bool) -> FeedbackRecord:
    from aiops_common.schemas import FeedbackLabel, FeedbackRecord

    service = service.strip()
    if not service:
        raise fail("the service is empty", 2)
    settings = _settings()
    if not force:
        names = _with_documents(settings, lambda store: _considered(store, incident_id))
        if names is None:
            raise fail(
                f"no incident {incident_id!r} in {settings.documents_url} (`aiops incidents list` shows them);"
                " --force sends the label anyway"
            )
        if service not in names:
            raise fail(
                f"{service!r} is not a service of incident {incident_id} or of its analysis"
                f" ({', '.join(sorted(names)) or 'none'}); --force sends the label anyway"
            )
    record = FeedbackRecord(
        subject_id=incident_id,
        subject_kind="incident",
        related_id=service,
        label=FeedbackLabel(label),
        by=by or getpass.getuser(),
        at=datetime.now(UTC),
        note=note,
    )
    asyncio.run(_publish(record, settings))
    return record


_NOTE = typer.Option(help="Why, for whoever reviews the ranking.")
_BY = typer.Option(help="Who; default: the current user.")
_FORCE = typer.Option(
    "--force", help="Send the label even if the document store does not know the incident or the service."
)
_SERVICE = typer.Argument(help="The service, as the ranking names it.")


def _cause_command(label: str, verb: str, doc: str) -> Callable[..., None]:
    """The command of one label: both say the same thing about a service and an incident, with opposite labels."""

    def command(
        incident_id: Annotated[str, _INCIDENT],
        service: Annotated[str, _SERVICE],
        by: Annotated[str | None, _BY] = None,
        note: Annotated[str, _NOTE] = "",
        force: Annotated[bool, _FORCE] = False,
    ) -> None:
        record = _label(incident_id, service, label, note, by, force)
        typer.echo(f"{record.related_id} {verb} as the cause of {incident_id} by {record.by} ({record.id})")

    command.__doc__ = doc
    return command


confirm = _cause_command(
    "confirmed_cause",
    "confirmed",
    "Confirm a service as the root cause of an incident: its prior as a cause rises for later incidents.",
)
reject = _cause_command(
    "wrong_cause",
    "rejected",
    "Say a service ranked for an incident did not cause it: its prior as a cause falls for later incidents.",
)
