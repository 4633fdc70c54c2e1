"""Backfill: the series the shop emits live, for the minutes before now, posted with their past times."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from aiops_cli.demo.faults import SERVICES, ShopState
from aiops_cli.demo.shop import CPU_METRIC, METRICS_INTERVAL_S, REPLICAS_METRIC, cpu_reading
from aiops_cli.demo.traffic import SpanSpec, requests_in, simulate_request
from aiops_cli.replay import ReplayError, post_samples

__all__ = ["backfill", "metric_rows", "trace_requests"]

_PROTOBUF = {"Content-Type": "application/x-protobuf"}


def _prometheus(name: str) -> str:
    return name.replace(".", "_")


def trace_requests(
    state: ShopState, start_s: float, end_s: float, rng: random.Random, chunk_s: float = 60.0
) -> Iterator[ExportTraceServiceRequest]:
    """The requests of ``[start_s, end_s)`` second by second, as one OTLP request per ``chunk_s``, in time order."""
    at = start_s
    while at < end_s:
        chunk_end = min(end_s, at + chunk_s)
        by_service: dict[str, list[Span]] = {s: [] for s in SERVICES}
        second = at
        while second < chunk_end:
            for _ in range(requests_in(second, 1.0, rng)):
                specs = simulate_request(state, second + rng.random(), rng)
                for service, span in _spans(specs, rng):
                    by_service[service].append(span)
            second += 1.0
        request = ExportTraceServiceRequest()
        for service, spans in by_service.items():
            if spans:
                request.resource_spans.append(
                    ResourceSpans(
                        resource=Resource(
                            attributes=[KeyValue(key="service.name", value=AnyValue(string_value=service))]
                        ),
                        scope_spans=[ScopeSpans(scope=InstrumentationScope(name="aiops.demo.shop"), spans=spans)],
                    )
                )
        yield request
        at = chunk_end


def _spans(specs: Sequence[SpanSpec], rng: random.Random) -> Iterator[tuple[str, Span]]:
    trace_id = rng.getrandbits(128).to_bytes(16, "big")
    ids = [rng.getrandbits(64).to_bytes(8, "big") for _ in specs]
    for spec, span_id in zip(specs, ids, strict=True):
        yield (
            spec.service,
            Span(
                trace_id=trace_id,
                span_id=span_id,
                parent_span_id=ids[spec.parent] if spec.parent >= 0 else b"",
                name=spec.operation,
                kind=Span.SPAN_KIND_SERVER,
                start_time_unix_nano=spec.start_ns,
                end_time_unix_nano=spec.end_ns,
                status=Status(code=Status.STATUS_CODE_ERROR, message=spec.message)
                if spec.error
                else Status(code=Status.STATUS_CODE_UNSET),
            ),
        )


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
            body = request.SerializeToString()
            for attempt in range(20):
                try:
                    response = client.post(f"{base}/v1/traces", content=body, headers=_PROTOBUF)
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
            spans += sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
            if progress is not None and request.resource_spans:
                last = max(
                    sp.end_time_unix_nano for r in request.resource_spans for s in r.scope_spans for sp in s.spans
                )
                progress(last / 1e9)
    return spans
