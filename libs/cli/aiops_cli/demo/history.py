"""Backfill: the series the shop emits live, for the minutes before now, posted with their past times."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import httpx

from aiops_cli.demo.faults import SERVICES, ShopState
from aiops_cli.demo.shop import CPU_METRIC, METRICS_INTERVAL_S, REPLICAS_METRIC, cpu_reading
from aiops_cli.demo.traffic import SpanSpec, requests_in, simulate_request
from aiops_cli.replay import ReplayError, post_samples

__all__ = ["backfill", "metric_rows", "trace_requests"]

_SERVER = 2  # OTLP SpanKind SERVER
_ERROR = 2  # OTLP StatusCode ERROR

Json = dict[str, Any]


def _prometheus(name: str) -> str:
    return name.replace(".", "_")


def trace_requests(
    state: ShopState, start_s: float, end_s: float, rng: random.Random, chunk_s: float = 60.0
) -> Iterator[Json]:
    """The requests of ``[start_s, end_s)`` second by second, as one OTLP/JSON trace request per ``chunk_s``, in
    time order (what the live shop's SDK sends, with past times)."""
    at = start_s
    while at < end_s:
        chunk_end = min(end_s, at + chunk_s)
        by_service: dict[str, list[Json]] = {s: [] for s in SERVICES}
        second = at
        while second < chunk_end:
            for _ in range(requests_in(second, 1.0, rng)):
                specs = simulate_request(state, second + rng.random(), rng)
                for service, span in _spans(specs, rng):
                    by_service[service].append(span)
            second += 1.0
        yield {
            "resourceSpans": [
                {
                    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                    "scopeSpans": [{"scope": {"name": "aiops.demo.shop"}, "spans": spans}],
                }
                for service, spans in by_service.items()
                if spans
            ]
        }
        at = chunk_end


def _spans(specs: Sequence[SpanSpec], rng: random.Random) -> Iterator[tuple[str, Json]]:
    trace_id = f"{rng.getrandbits(128):032x}"
    ids = [f"{rng.getrandbits(64):016x}" for _ in specs]
    for spec, span_id in zip(specs, ids, strict=True):
        span: Json = {
            "traceId": trace_id,
            "spanId": span_id,
            "name": spec.operation,
            "kind": _SERVER,
            "startTimeUnixNano": str(spec.start_ns),
            "endTimeUnixNano": str(spec.end_ns),
        }
        if spec.parent >= 0:
            span["parentSpanId"] = ids[spec.parent]
        if spec.error:
            span["status"] = {"code": _ERROR, "message": spec.message}
        yield spec.service, span


def _span_list(request: Json) -> list[Json]:
    return [span for r in request["resourceSpans"] for s in r["scopeSpans"] for span in s["spans"]]


def metric_rows(
    state: ShopState, start_s: float, end_s: float, step_s: float, rng: random.Random
) -> list[dict[str, object]]:
    """The shop's gauges every ``step_s`` over ``[start_s, end_s)`` as JSON metrics API samples (the names and
    labels the SDK's OTLP export of them becomes)."""
    rows: list[dict[str, object]] = []
    at = start_s
    while at < end_s:
        for service in SERVICES:
            labels = {"service": service}
            cpu = cpu_reading(state, service, at, rng)
            ts = int(at * 1000)
            rows.append({"name": _prometheus(CPU_METRIC), "labels": labels, "value": cpu, "timestamp": ts})
            replicas = float(state.services[service].replicas)
            rows.append({"name": _prometheus(REPLICAS_METRIC), "labels": labels, "value": replicas, "timestamp": ts})
        at += step_s
    return rows


def backfill(
    ingest_url: str,
    state: ShopState,
    start_s: float,
    end_s: float,
    seed: int = 0,
    metrics_step_s: float = METRICS_INTERVAL_S,
    progress: Callable[[float], object] | None = None,
) -> int:
    """Post ``[start_s, end_s)`` of the shop's traces and gauges, each request acknowledged before the next (as
    ``aiops replay`` does: a 429/503 retried); the spans sent. ``progress`` gets the time reached."""
    base = ingest_url.rstrip("/")
    rng = random.Random(seed)
    spans = 0
    rows = metric_rows(state, start_s, end_s, metrics_step_s, rng)
    with httpx.Client(timeout=30) as client:
        for first in range(0, len(rows), 2000):
            post_samples(client, base, rows[first : first + 2000])
        for request in trace_requests(state, start_s, end_s, rng):
            for attempt in range(20):
                try:
                    response = client.post(f"{base}/v1/traces", json=request)
                except httpx.TransportError as exc:
                    if attempt == 19:
                        raise ReplayError(f"cannot reach {base}/v1/traces: {exc}") from None
                    time.sleep(1.0)
                    continue
                if response.status_code in (429, 503) and attempt < 19:
                    time.sleep(1.0)
                    continue
                if response.status_code >= 300:
                    raise ReplayError(f"{base}/v1/traces answered {response.status_code}: {response.text[:500]}")
                break
            sent = _span_list(request)
            spans += len(sent)
            if progress is not None and sent:
                progress(max(int(span["endTimeUnixNano"]) for span in sent) / 1e9)
    return spans
