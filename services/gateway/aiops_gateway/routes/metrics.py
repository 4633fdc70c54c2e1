"""``/api/v1/metrics``: range queries against the time-series store, and the values a label takes."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel

from aiops_gateway.auth import Principal, Role, require
from aiops_gateway.context import gateway
from aiops_gateway.errors import ERROR_RESPONSES, ApiError
from aiops_gateway.routes.anomalies import instant_param

__all__ = ["MAX_POINTS", "router"]

router = APIRouter(tags=["metrics"], responses=ERROR_RESPONSES)

MAX_POINTS = 11_000
"""Points one series may have in an answer (Prometheus' own limit): a longer range needs a larger step."""

_LABEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SeriesOut(BaseModel):
    name: str
    labels: dict[str, str]
    points: list[tuple[int, float]]
    """``[timestamp_ms, value]``, oldest first."""


class QueryResult(BaseModel):
    series: list[SeriesOut]


class LabelValues(BaseModel):
    label: str
    values: list[str]


def _matchers(name: str | None, match: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    if name:
        out["__name__"] = name
    for item in match:
        label, sep, value = item.partition("=")
        label = label.strip()
        if not sep or not _LABEL.match(label):
            raise ApiError(400, f"match: {item!r} is not label=value (a label is letters, digits and _)")
        if label in out and out[label] != value:
            raise ApiError(400, f"match: {label!r} is given two values")
        out[label] = value
    return out


Match = Annotated[list[str], Query(max_length=64, description="A label matcher `label=value`; repeat for more.")]


@router.get("/metrics/query", response_model=QueryResult, summary="A range query: the samples of matching series")
async def query(
    principal: Annotated[Principal, Depends(require(Role.VIEWER))],
    request: Request,
    name: Annotated[str, Query(min_length=1, max_length=256, description="Metric name.")],
    match: Match = [],  # noqa: B006 (FastAPI copies defaults)
    start: Annotated[
        str | None, Query(max_length=64, description="ISO-8601, seconds since the epoch or 6h ago; default 1h ago.")
    ] = None,
    end: Annotated[str | None, Query(max_length=64, description="As start; default now.")] = None,
    step: Annotated[
        float | None, Query(gt=0, le=86_400 * 366, description="Seconds between points; none: every sample.")
    ] = None,
) -> QueryResult:
    matchers = _matchers(name, match)
    now = datetime.now(UTC)
    until = now if end is None else instant_param(end, "end", now, unix=True)
    since = until - timedelta(hours=1) if start is None else instant_param(start, "start", now, unix=True)
    if since > until:
        raise ApiError(400, "start must not be after end")
    start_ms, end_ms = int(since.timestamp() * 1000), int(until.timestamp() * 1000)
    step_ms = None if step is None else max(1, int(step * 1000))
    if step_ms is not None and (end_ms - start_ms) // step_ms + 1 > MAX_POINTS:
        raise ApiError(
            400, f"{(end_ms - start_ms) // step_ms + 1} points per series is more than {MAX_POINTS}; raise the step"
        )
    found = await gateway(request).tsdb.query_range(matchers, start_ms, end_ms, step_ms)
    too_long = [s.key for s in found if s.ts_ms.size > MAX_POINTS]
    if too_long:
        raise ApiError(
            400, f"{too_long[0]} has more than {MAX_POINTS} samples in the range; give a step or a shorter range"
        )
    return QueryResult(series=[SeriesOut(name=s.name, labels=dict(s.labels), points=s.points()) for s in found])


@router.get("/metrics/labels/{label}", response_model=LabelValues, summary="The values a label takes")
async def label_values(
    principal: Annotated[Principal, Depends(require(Role.VIEWER))],
    request: Request,
    label: Annotated[str, Path(min_length=1, max_length=256)],
    match: Match = [],  # noqa: B006 (FastAPI copies defaults)
    name: Annotated[str | None, Query(max_length=256, description="Only series of this metric.")] = None,
) -> LabelValues:
    if label != "__name__" and not _LABEL.match(label):
        raise ApiError(400, f"{label!r} is not a label name (letters, digits and _)")
    matchers = _matchers(name, match)
    values = await gateway(request).tsdb.label_values(label, matchers or None)
    return LabelValues(label=label, values=values)
