"""``/api/v1/anomalies`` and ``/api/v1/predictions``: what detection found and foresaw, from the document store."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from aiops_common.documents import DocumentFilter
from aiops_common.schemas import AnomalyRecord, AnomalySeverity, PredictionRecord
from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ValidationError

from aiops_gateway.auth import Principal, Role, require
from aiops_gateway.context import gateway
from aiops_gateway.errors import ERROR_RESPONSES, ApiError
from aiops_gateway.views.times import parse_instant

__all__ = ["instant_param", "router"]

router = APIRouter(tags=["anomalies"], responses=ERROR_RESPONSES)


def instant_param(value: str, name: str, now: datetime, unix: bool = False) -> datetime:
    """A time query parameter (``views.times.parse_instant``); one it cannot read is a 400 naming it."""
    try:
        return parse_instant(value, now, unix=unix)
    except ValueError as exc:
        raise ApiError(400, f"{name}: {exc}") from None


class AnomalyPage(BaseModel):
    anomalies: list[AnomalyRecord]
    next_cursor: str | None


class PredictionPage(BaseModel):
    predictions: list[PredictionRecord]
    next_cursor: str | None


def _filter(
    service: str | None,
    severity: str | None,
    series_key: str | None,
    since: str | None,
    until: str | None,
    text: str | None,
) -> DocumentFilter:
    now = datetime.now(UTC)
    start = None if since is None else instant_param(since, "since", now)
    end = None if until is None else instant_param(until, "until", now)
    if start is not None and end is not None and start >= end:
        raise ApiError(400, "since must be before until")
    return DocumentFilter(
        start=start,
        end=end,
        service=service or None,
        severity=severity,
        text=text or None,
        terms=(("series_key", series_key),) if series_key else (),
    )


Service = Annotated[str | None, Query(max_length=256, description="Only this service's.")]
SeriesKey = Annotated[str | None, Query(max_length=4096, description='One series, e.g. cpu{host="a"}.')]
Since = Annotated[str | None, Query(max_length=64, description="From (ISO-8601 instant, or 30m, 6h, 7d ago).")]
Until = Annotated[str | None, Query(max_length=64, description="Until, excluded (as since).")]
Text = Annotated[str | None, Query(max_length=512, description="Words of the series name.")]
Limit = Annotated[int, Query(ge=1, le=500)]
Cursor = Annotated[str | None, Query(max_length=8192, description="next_cursor of the previous page.")]


@router.get("/anomalies", response_model=AnomalyPage, summary="Detected anomalies, newest first")
async def list_anomalies(
    principal: Annotated[Principal, Depends(require(Role.VIEWER))],
    request: Request,
    service: Service = None,
    severity: AnomalySeverity | None = None,
    series_key: SeriesKey = None,
    since: Since = None,
    until: Until = None,
    text: Text = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> AnomalyPage:
    where = _filter(service, None if severity is None else severity.value, series_key, since, until, text)
    page = await gateway(request).page("anomalies", where, limit, cursor)
    return AnomalyPage(
        anomalies=[AnomalyRecord.from_document(d.body) for d in page.documents],
        next_cursor=page.cursor,
    )


@router.get("/anomalies/{anomaly_id}", response_model=AnomalyRecord, summary="One anomaly")
async def get_anomaly(
    principal: Annotated[Principal, Depends(require(Role.VIEWER))],
    request: Request,
    anomaly_id: Annotated[str, Path(min_length=1, max_length=256)],
) -> AnomalyRecord:
    gw = gateway(request)
    stored = await gw.documents.get("anomalies", anomaly_id)
    if stored is not None:
        try:
            return AnomalyRecord.from_document(stored.body)
        except ValidationError:
            pass  # written by other code; the feedback store's copy is the record as published
    found = await gw.feedback.anomaly(anomaly_id)
    if found is None:
        raise ApiError(404, f"no anomaly {anomaly_id!r}")
    return found


@router.get("/predictions", response_model=PredictionPage, summary="Predicted threshold crossings, newest first")
async def list_predictions(
    principal: Annotated[Principal, Depends(require(Role.VIEWER))],
    request: Request,
    service: Service = None,
    series_key: SeriesKey = None,
    since: Since = None,
    until: Until = None,
    text: Text = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> PredictionPage:
    where = _filter(service, None, series_key, since, until, text)
    page = await gateway(request).page("predictions", where, limit, cursor)
    return PredictionPage(
        predictions=[PredictionRecord.from_document(d.body) for d in page.documents],
        next_cursor=page.cursor,
    )


@router.get("/predictions/{prediction_id}", response_model=PredictionRecord, summary="One prediction")
async def get_prediction(
    principal: Annotated[Principal, Depends(require(Role.VIEWER))],
    request: Request,
    prediction_id: Annotated[str, Path(min_length=1, max_length=256)],
) -> PredictionRecord:
    stored = await gateway(request).documents.get("predictions", prediction_id)
    if stored is None:
        raise ApiError(404, f"no prediction {prediction_id!r}")
    return PredictionRecord.from_document(stored.body)
