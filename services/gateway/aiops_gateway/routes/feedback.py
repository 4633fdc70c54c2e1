"""``/api/v1``: operators' labels: on anomalies (true or false positive) and on incidents (a member that does not
belong, two incidents that are one, the cause confirmed or rejected), each checked against the stores, published
to ``feedback`` keyed by its subject, and audited. Splitting and merging incidents are such labels too."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated

from aiops_common.broker.publisher import Message
from aiops_common.schemas import FeedbackLabel, FeedbackRecord, IncidentRecord
from aiops_common.topics import Topics
from fastapi import APIRouter, Depends, Query, Request

from aiops_gateway.audit import audit
from aiops_gateway.auth import Principal, Role, require
from aiops_gateway.context import Gateway, gateway
from aiops_gateway.errors import ERROR_RESPONSES, ApiError
from aiops_gateway.routes.incidents import CONFLICT, IncidentId, incident_body, latest_rca
from aiops_gateway.views.incidents import cause_services
from aiops_gateway.views.models import (
    FeedbackAccepted,
    FeedbackList,
    FeedbackRequest,
    MergeRequest,
    SplitRequest,
)

__all__ = ["router"]

router = APIRouter(tags=["feedback"], responses=ERROR_RESPONSES)

_ANOMALY_LABELS = (FeedbackLabel.TRUE_POSITIVE, FeedbackLabel.FALSE_POSITIVE)
_CAUSE_LABELS = (FeedbackLabel.CONFIRMED_CAUSE, FeedbackLabel.WRONG_CAUSE)
_OUTCOME_LABELS = (FeedbackLabel.REMEDIATED, FeedbackLabel.NOT_REMEDIATED)


async def _anomaly_services(gw: Gateway, anomaly_id: str) -> list[str]:
    """The services of an anomaly the stores know; 404 when neither does."""
    doc = await gw.within(gw.documents.get("anomalies", anomaly_id))
    if doc is not None:
        service = doc.body.get("service") or ""
        return [service] if service else list(doc.body.get("services", []))
    anomaly = await gw.within(gw.feedback.anomaly(anomaly_id))
    if anomaly is None:
        raise ApiError(404, f"no anomaly {anomaly_id!r}")
    return [anomaly.service] if anomaly.service else []


def _merge_conflict(incident_id: str, merged_into: object) -> ApiError | None:
    if merged_into:
        return ApiError(409, f"incident {incident_id} was merged into {merged_into}; label that one")
    return None


async def checked(gw: Gateway, request: FeedbackRequest) -> list[str]:
    """Refuse a label that does not fit what the stores know (4xx); the services it concerns, for the audit."""
    label, subject, related = request.label, request.subject_id, request.related_id
    if label in _OUTCOME_LABELS:
        raise ApiError(
            400, f"{label.value}: execution outcomes are recorded by the action service, not given through the API"
        )
    if label in _ANOMALY_LABELS:
        if request.subject_kind != "anomaly":
            raise ApiError(400, f"{label.value} labels an anomaly: subject_kind must be anomaly")
        return await _anomaly_services(gw, subject)
    if request.subject_kind != "incident":
        raise ApiError(400, f"{label.value} labels an incident: subject_kind must be incident")
    body = await incident_body(gw, subject)
    if label is FeedbackLabel.NOT_IN_INCIDENT:
        if not related:
            raise ApiError(400, "not_in_incident needs related_id: the fingerprint of the member that does not belong")
        if not any(m.get("fingerprint") == related for m in body.get("members", [])):
            raise ApiError(404, f"incident {subject} has no member {related!r}")
        if (conflict := _merge_conflict(subject, body.get("merged_into"))) is not None:
            raise conflict
    elif label is FeedbackLabel.SAME_INCIDENT:
        if not related:
            raise ApiError(400, "same_incident needs related_id: the other incident's id")
        if related == subject:
            raise ApiError(400, "an incident cannot be merged with itself")
        other = await incident_body(gw, related)
        for incident in (body, other):
            if (conflict := _merge_conflict(incident["id"], incident.get("merged_into"))) is not None:
                raise conflict
        return sorted({*body.get("services", []), *other.get("services", [])})
    elif label in _CAUSE_LABELS:
        if not related.strip():
            raise ApiError(400, f"{label.value} needs related_id: the service")
        names = cause_services(IncidentRecord.from_document(body), await latest_rca(gw, subject))
        if related not in names:
            raise ApiError(
                400,
                f"{related!r} is not a service of incident {subject} nor ranked by its analysis"
                f" ({', '.join(sorted(names)) or 'none'})",
            )
    return list(body.get("services", []))


async def send(
    request: Request, principal: Principal, label: FeedbackRequest, services: Sequence[str]
) -> FeedbackAccepted:
    """Publish the label (acknowledged), keyed by its subject so the labels of one subject stay in order; audit it."""
    record = FeedbackRecord(
        subject_id=label.subject_id,
        subject_kind=label.subject_kind,
        label=label.label,
        by=principal.name,
        at=datetime.now(UTC),
        note=label.note,
        related_id=label.related_id,
    )
    await gateway(request).publisher.publish(
        [Message(Topics.FEEDBACK, record.encode(), key=record.subject_id.encode())]
    )
    details = {"feedback_id": record.id, "label": record.label.value, "related_id": record.related_id}
    message = record.note or f"{record.label.value} on {record.subject_kind} {record.subject_id}"
    await audit(request, principal, f"feedback.{record.label.value}", record.subject_id, message, services, details)
    return FeedbackAccepted.of(record)


@router.post(
    "/feedback",
    response_model=FeedbackAccepted,
    status_code=202,
    responses=CONFLICT,
    summary="Label an anomaly or an incident",
)
async def give_feedback(
    principal: Annotated[Principal, Depends(require(Role.OPERATOR))], request: Request, body: FeedbackRequest
) -> FeedbackAccepted:
    """Checked against the stores (the anomaly, the incident, the member, the other incident or the service must
    exist and fit), then sent to the platform: detection, correlation and RCA learn from it."""
    return await send(request, principal, body, await checked(gateway(request), body))


@router.get("/feedback", response_model=FeedbackList, summary="Labels kept by the feedback store")
async def list_feedback(
    principal: Annotated[Principal, Depends(require(Role.VIEWER))],
    request: Request,
    subject_id: Annotated[str | None, Query(max_length=512, description="Only labels of this subject.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="The newest this many.")] = 100,
) -> FeedbackList:
    gw = gateway(request)
    labels = await gw.within(gw.feedback.labels(subject_id or None))
    return FeedbackList(labels=[FeedbackAccepted.of(r) for r in labels[-limit:]])


@router.post(
    "/incidents/{incident_id}/split",
    response_model=FeedbackAccepted,
    status_code=202,
    responses=CONFLICT,
    tags=["incidents"],
    summary="Say a member does not belong in an incident",
)
async def split_incident(
    principal: Annotated[Principal, Depends(require(Role.OPERATOR))],
    request: Request,
    incident_id: IncidentId,
    body: SplitRequest,
) -> FeedbackAccepted:
    """A ``not_in_incident`` label: the member leaves, and correlation groups such pairs less."""
    label = FeedbackRequest(
        subject_kind="incident",
        subject_id=incident_id,
        label=FeedbackLabel.NOT_IN_INCIDENT,
        related_id=body.fingerprint,
        note=body.note,
    )
    return await send(request, principal, label, await checked(gateway(request), label))


@router.post(
    "/incidents/{incident_id}/merge",
    response_model=FeedbackAccepted,
    status_code=202,
    responses=CONFLICT,
    tags=["incidents"],
    summary="Say two incidents are one",
)
async def merge_incidents(
    principal: Annotated[Principal, Depends(require(Role.OPERATOR))],
    request: Request,
    incident_id: IncidentId,
    body: MergeRequest,
) -> FeedbackAccepted:
    """A ``same_incident`` label: they merge, and correlation groups such pairs more."""
    label = FeedbackRequest(
        subject_kind="incident",
        subject_id=incident_id,
        label=FeedbackLabel.SAME_INCIDENT,
        related_id=body.other_id,
        note=body.note,
    )
    return await send(request, principal, label, await checked(gateway(request), label))
