"""``/api/v1``: incidents (list, detail, root-cause analyses) and their lifecycle (acknowledge, mitigate, resolve,
reopen), which is sent to correlation as an ``IncidentCommand``: correlation owns the incident and records the
change in its history."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

import orjson
import structlog
from aiops_common.broker.publisher import Message
from aiops_common.documents import Document, DocumentFilter
from aiops_common.schemas import (
    AnomalyRecord,
    ExecutionRecord,
    IncidentCommand,
    IncidentRecord,
    IncidentSeverity,
    IncidentStatus,
    MemberKind,
    RcaResult,
)
from aiops_common.topics import CORRELATION_EVENTS_KEY, Topics
from aiops_common.topology import Change
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import ValidationError

from aiops_gateway.audit import audit
from aiops_gateway.auth import Principal, Role, require
from aiops_gateway.context import Gateway, gateway
from aiops_gateway.errors import ERROR_RESPONSES, ApiError, ErrorBody
from aiops_gateway.views.incidents import (
    LIFECYCLE,
    LOG_LINES,
    SUMMARY_FIELDS,
    URGENT_SEVERITIES,
    check_cursor,
    lifecycle_conflict,
    linked_changes,
    newest_rca,
    ordered_logs,
    summary,
    timeline,
)
from aiops_gateway.views.models import (
    IncidentDetail,
    IncidentList,
    LifecycleAccepted,
    LifecycleRequest,
    LogLine,
)
from aiops_gateway.views.times import parse_instant

__all__ = ["CONFLICT", "IncidentId", "incident_body", "latest_rca", "router"]

log = structlog.get_logger(__name__)

T = TypeVar("T")

router = APIRouter(tags=["incidents"], responses=ERROR_RESPONSES)

CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorBody, "description": "Makes no sense in the incident's current state (the error says why)"}
}

IncidentId = Annotated[str, Path(min_length=1, max_length=512, description="The incident's id.")]

CHANGES_BEFORE_ONSET = timedelta(minutes=30)
LOGS_AROUND_ONSET = timedelta(minutes=15)
MAX_ANOMALIES = 200
"""Anomaly members looked up for an incident's detail (a storm's incident can hold thousands)."""
MAX_SERVICES = 20
MAX_EXECUTIONS = 20
"""Services whose changes and log lines an incident's detail reads."""


async def incident_body(gw: Gateway, incident_id: str) -> dict[str, Any]:
    """The stored incident's body; 404 when there is none."""
    doc = await gw.within(gw.documents.get("incidents", incident_id))
    if doc is None:
        raise ApiError(404, f"no incident {incident_id!r}")
    return doc.body


async def latest_rca(gw: Gateway, incident_id: str) -> RcaResult | None:
    """The analysis of the incident's highest revision, or None before one."""
    where = DocumentFilter(terms=(("incident_id", incident_id),))
    # Newest event time first: a higher revision has a later ``at``, so the first page holds the highest
    # unless more than a page's worth of analyses share one instant.
    page = await gw.within(gw.documents.query("rca_results", where, limit=20))
    return newest_rca(d.body for d in page.documents)


@router.get(
    "/incidents",
    response_model=IncidentList,
    summary="Incidents, newest onset first, filtered and paged",
    responses={400: {"model": ErrorBody, "description": "A bad time or cursor"}},
)
async def list_incidents(
    principal: Annotated[Principal, Depends(require(Role.VIEWER))],
    request: Request,
    status: Annotated[IncidentStatus | None, Query(description="Only incidents in this status.")] = None,
    severity: Annotated[IncidentSeverity | None, Query(description="Only incidents of this severity.")] = None,
    service: Annotated[str | None, Query(max_length=256, description="Only incidents affecting it.")] = None,
    text: Annotated[str | None, Query(max_length=512, description="Words in the title or summary.")] = None,
    since: Annotated[
        str | None, Query(max_length=64, description="Onset at or after: 30m, 6h, 7d back from now, or ISO-8601.")
    ] = None,
    until: Annotated[
        str | None, Query(max_length=64, description="Onset before: 30m, 6h, 7d back from now, or ISO-8601.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="At most this many.")] = 50,
    cursor: Annotated[str | None, Query(max_length=1024, description="`next_cursor` of the previous page.")] = None,
) -> Response:
    gw = gateway(request)
    now = datetime.now(UTC)
    try:
        start = parse_instant(since, now) if since else None
        end = parse_instant(until, now) if until else None
        if cursor is not None:
            check_cursor(cursor)
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    if start is not None and end is not None and start > end:
        raise ApiError(400, f"since ({start.isoformat()}) is after until ({end.isoformat()})")
    where = DocumentFilter(
        start=start,
        end=end,
        status=None if status is None else status.value,
        severity=None if severity is None else severity.value,
        service=service,
        text=text,
    )

    async def read() -> bytes:
        page = await gw.within(
            gw.documents.query("incidents", where, limit=limit, cursor=cursor, fields=SUMMARY_FIELDS)
        )
        # The JSON is made once, from the stored values (already JSON), instead of through models and FastAPI's
        # validation of the response: this is the API's most frequent answer (see docs/gateway-benchmarks.md).
        return orjson.dumps({"incidents": [summary(d.body) for d in page.documents], "next_cursor": page.cursor})

    answer = await gw.answers.get_or_make(f"incidents?{request.url.query}", read)
    return Response(answer, media_type="application/json")


async def _log_documents(gw: Gateway, services: Sequence[str], onset: datetime) -> list[Document]:
    """Urgent lines of each service, then enough of all its lines to fill the rest (the view orders them)."""
    start, end = onset - LOGS_AROUND_ONSET, onset + LOGS_AROUND_ONSET
    documents: list[Document] = []
    for service in services:
        for severity in URGENT_SEVERITIES:
            where = DocumentFilter(start=start, end=end, service=service, severity=severity)
            page = await gw.documents.query("logs", where, oldest_first=True, limit=LOG_LINES)
            documents.extend(page.documents)
        page = await gw.documents.query(
            "logs", DocumentFilter(start=start, end=end, service=service), oldest_first=True, limit=LOG_LINES
        )
        documents.extend(page.documents)
    return documents


async def _document_anomaly(gw: Gateway, anomaly_id: str) -> AnomalyRecord | None:
    doc = await gw.within(gw.documents.get("anomalies", anomaly_id))
    if doc is None:
        return None
    try:
        return AnomalyRecord.from_document(doc.body)
    except ValidationError as exc:  # written by another version: the feedback store may still have it
        log.warning("stored anomaly unreadable", anomaly_id=anomaly_id, error=str(exc))
        return None


async def _anomalies(gw: Gateway, incident: IncidentRecord, missing: list[str]) -> list[AnomalyRecord]:
    """The anomaly members as detection kept them: the documents' ``anomalies``, else the feedback store."""
    found: list[AnomalyRecord] = []
    feedback_readable = True
    for member in [m for m in incident.members if m.kind is MemberKind.ANOMALY][:MAX_ANOMALIES]:
        anomaly = await _document_anomaly(gw, member.fingerprint)
        if anomaly is None and feedback_readable:
            try:
                anomaly = await gw.within(gw.feedback.anomaly(member.fingerprint))
            except Exception as exc:  # an extra: the page shows what the document store has
                log.warning("feedback store unavailable", error=f"{type(exc).__name__}: {exc}")
                missing.append(f"anomalies: feedback store: {type(exc).__name__}: {exc}")
                feedback_readable = False
        if anomaly is not None:
            found.append(anomaly)
    return found


async def _executions(gw: Gateway, incident_id: str, missing: list[str]) -> list[ExecutionRecord]:
    where = DocumentFilter(terms=(("incident_id", incident_id),))
    try:
        page = await gw.within(gw.documents.query("executions", where, limit=MAX_EXECUTIONS))
    except Exception as exc:  # as for logs: the rest of the page is worth showing
        log.warning("executions unavailable", error=f"{type(exc).__name__}: {exc}")
        missing.append(f"executions: {type(exc).__name__}: {exc}")
        return []
    return [ExecutionRecord.from_document(d.body) for d in page.documents]


@router.get("/incidents/{incident_id}", response_model=IncidentDetail, summary="One incident with all it links to")
async def incident_detail(
    principal: Annotated[Principal, Depends(require(Role.VIEWER))], request: Request, incident_id: IncidentId
) -> IncidentDetail:
    """The incident, its latest root-cause analysis, linked changes, log lines around onset, its anomalies with
    their bands and its timeline. A store that cannot be read for changes or logs leaves that part empty and
    is named in ``missing``."""
    gw = gateway(request)
    incident = IncidentRecord.from_document(await incident_body(gw, incident_id))
    rca = await latest_rca(gw, incident_id)
    missing: list[str] = []
    services = incident.services[:MAX_SERVICES]
    onset = incident.started_at
    recorded: list[Change] = []
    if services:
        since = onset - CHANGES_BEFORE_ONSET
        try:
            recorded = await gw.within(gw.topology.changes(since, max(datetime.now(UTC), since), services))
        except Exception as exc:  # an extra: the detail is still worth showing without it
            log.warning("topology store unavailable", error=f"{type(exc).__name__}: {exc}")
            missing.append(f"topology: {type(exc).__name__}: {exc}")
    changes = linked_changes(incident, recorded)
    logs: list[LogLine] = []
    try:
        logs = ordered_logs(await gw.within(_log_documents(gw, services, onset)))
    except Exception as exc:  # as above
        log.warning("log lines unavailable", error=f"{type(exc).__name__}: {exc}")
        missing.append(f"logs: {type(exc).__name__}: {exc}")
    return IncidentDetail(
        incident=incident,
        rca=rca,
        changes=changes,
        logs=logs,
        anomalies=await _anomalies(gw, incident, missing),
        actions=await _executions(gw, incident.id, missing),
        timeline=timeline(incident, changes, rca),
        missing=missing,
    )


@router.get("/incidents/{incident_id}/rca", response_model=RcaResult, summary="The incident's latest root causes")
async def incident_rca(
    principal: Annotated[Principal, Depends(require(Role.VIEWER))], request: Request, incident_id: IncidentId
) -> RcaResult:
    """The analysis of its highest revision: causes best first, each with its evidence. 404 before one."""
    return await _rca_or_404(gateway(request), incident_id)


@router.get("/rca", response_model=RcaResult, summary="An incident's latest root causes", tags=["rca"])
async def rca_of(
    principal: Annotated[Principal, Depends(require(Role.VIEWER))],
    request: Request,
    incident_id: Annotated[str, Query(min_length=1, max_length=512, description="The incident's id.")],
) -> RcaResult:
    """The same as ``GET /incidents/{incident_id}/rca``."""
    return await _rca_or_404(gateway(request), incident_id)


async def _rca_or_404(gw: Gateway, incident_id: str) -> RcaResult:
    rca = await latest_rca(gw, incident_id)
    if rca is None:
        raise ApiError(404, f"no root-cause analysis of incident {incident_id!r} (not analysed yet, or no such id)")
    return rca


def _lifecycle_route(verb: str, status: IncidentStatus, summary_text: str) -> None:
    async def change(
        principal: Annotated[Principal, Depends(require(Role.OPERATOR))],
        request: Request,
        incident_id: IncidentId,
        body: LifecycleRequest,
    ) -> LifecycleAccepted:
        gw = gateway(request)
        stored = await incident_body(gw, incident_id)
        conflict = lifecycle_conflict(stored, status)
        if conflict is not None:
            raise ApiError(409, conflict)
        command = IncidentCommand(
            incident_id=incident_id, status=status, by=principal.name, at=datetime.now(UTC), note=body.note
        )
        await gw.publisher.publish([Message(Topics.CORRELATION_EVENTS, command.encode(), key=CORRELATION_EVENTS_KEY)])
        await audit(
            request,
            principal,
            f"incident.{verb}",
            incident_id,
            body.note or f"{verb} {incident_id}",
            stored.get("services", []),
            {"status": status.value, "was": stored.get("status"), "revision": stored.get("revision")},
        )
        return LifecycleAccepted(incident_id=incident_id, status=status, by=command.by, at=command.at)

    router.add_api_route(
        f"/incidents/{{incident_id}}/{verb}",
        change,
        methods=["POST"],
        name=f"{verb}_incident",
        status_code=202,
        response_model=LifecycleAccepted,
        responses=CONFLICT,
        summary=summary_text,
        description="Sent to correlation, which records it in the incident's history with who and why.",
    )


for _verb, _summary in (
    ("acknowledge", "Acknowledge an incident: someone is on it"),
    ("mitigate", "Mark an incident mitigated: the impact is gone, the cause may not be"),
    ("resolve", "Resolve an incident now"),
    ("reopen", "Open a resolved incident again"),
):
    _lifecycle_route(_verb, LIFECYCLE[_verb], _summary)
