"""RED metrics, call edges and log features from real span and log batches, read back from the topics."""

from __future__ import annotations

import numpy as np
import pytest
from aiops_common.broker import Publisher
from aiops_common.schemas import LogBatch, LogRecord, Span, SpanBatch, TopologyEdge
from aiops_common.topics import Topics

from ..conftest import StreamWorker, TopicReader, feature_rows, send

pytestmark = pytest.mark.functional

T0 = 1_700_000_040_000
MS = 1_000_000
SETTINGS = {
    "stream_window_s": 10,
    "stream_rollups": "[60]",
    "stream_allowed_lateness_s": 1,
    "stream_tsdb_enabled": False,
}


def span(
    trace: str, sid: str, parent: str, service: str, name: str, kind: str, start: int, end: int, status: str = "OK"
) -> Span:
    return Span(trace, sid, parent, service, name, kind, (T0 + start) * MS, (T0 + end) * MS, status)


async def test_red_metrics_and_call_edges(
    stream_worker: type[StreamWorker], publisher: Publisher, features: TopicReader, edges: TopicReader
) -> None:
    worker = stream_worker(**SETTINGS)
    frontend = [
        span("t1", "s1", "", "frontend", "GET /", "SERVER", 1_000, 1_300),
        span("t1", "s2", "s1", "frontend", "call cart", "CLIENT", 1_050, 1_250),
        span("t2", "s4", "", "frontend", "GET /", "SERVER", 2_000, 2_500, "ERROR"),
    ]
    cart = [
        span("t1", "s3", "s2", "cart", "GET /cart", "SERVER", 1_100, 1_200),
        span("t2", "s5", "s4", "cart", "GET /cart", "SERVER", 2_200, 2_400, "ERROR"),
        span("t3", "s7", "s6", "cart", "GET /cart", "SERVER", 2_850, 2_900),  # before its parent arrives
    ]
    # Services land on different partitions of traces.raw: the edges need the re-keying by trace.
    await send(publisher, Topics.TRACES_RAW, SpanBatch(frontend).encode(), 0)
    await send(publisher, Topics.TRACES_RAW, SpanBatch(cart).encode(), 1)
    await send(
        publisher,
        Topics.TRACES_RAW,
        SpanBatch([span("t3", "s6", "", "frontend", "GET /", "SERVER", 2_800, 3_000)]).encode(),
        0,
    )
    # Later spans of the same traces move every watermark past the first window.
    later = [
        span(t, f"late-{t}", "", svc, "GET /", "SERVER", 12_000, 12_500)
        for t in ("t1", "t2", "t3")
        for svc in ("frontend",)
    ]
    later_cart = [span(t, f"late-c-{t}", "", "cart", "GET /cart", "SERVER", 12_000, 12_500) for t in ("t1", "t2", "t3")]
    await send(publisher, Topics.TRACES_RAW, SpanBatch(later).encode(), 0)
    await send(publisher, Topics.TRACES_RAW, SpanBatch(later_cart).encode(), 1)

    front_key = 'red.latency_s{operation="GET /",service="frontend"}'
    cart_key = 'red.latency_s{operation="GET /cart",service="cart"}'
    front_requests = 'red.request_rate{operation="GET /",service="frontend"}'
    front_errors = 'red.error_rate{operation="GET /",service="frontend"}'
    cart_errors = 'red.error_rate{operation="GET /cart",service="cart"}'
    # Rows are sharded by series over the features partitions: wait for every series asserted on.
    wanted = {(key, T0, 10_000) for key in (front_key, cart_key, front_requests, front_errors, cart_errors)}
    await features.until(lambda v: wanted <= set(feature_rows(v)), 60, worker)
    await edges.until(lambda v: len(v) >= 1, 60, worker)
    rows = feature_rows(features.values)

    front = rows[(front_key, T0, 10_000)]
    assert (front["count"], front["p50"], front["max"]) == (3, 0.3, 0.5)
    assert front["mean"] == pytest.approx(1 / 3, rel=1e-15)
    assert rows[(front_requests, T0, 10_000)]["value"] == 0.3
    assert rows[(front_errors, T0, 10_000)]["value"] == 1 / 3
    assert rows[(cart_errors, T0, 10_000)]["sum"] == 1.0
    assert ('red.request_rate{operation="call cart",service="frontend"}', T0, 10_000) not in rows  # a CLIENT span

    (edge,) = edges.values
    assert isinstance(edge, TopologyEdge)
    assert (edge.caller, edge.callee, edge.window_start_ms, edge.window_length_ms) == ("frontend", "cart", T0, 10_000)
    assert (edge.calls, edge.errors) == (3, 1)
    durations = [0.1, 0.2, 0.05]
    assert edge.latency_p50_s == float(np.quantile(durations, 0.5))
    assert edge.latency_p99_s == float(np.quantile(durations, 0.99))
    assert edge.latency_max_s == 0.2


async def test_log_counts_and_new_templates(
    stream_worker: type[StreamWorker], publisher: Publisher, features: TopicReader
) -> None:
    worker = stream_worker(**SETTINGS)

    def log(at_ms: int, body: str, severity: str = "INFO") -> LogRecord:
        return LogRecord((T0 + at_ms) * MS, "api", body, severity)

    await send(
        publisher,
        Topics.LOGS_RAW,
        LogBatch([log(1_000, "user 17 logged in"), log(2_000, "db timeout after 30 ms", "ERROR")]).encode(),
    )
    await send(
        publisher,
        Topics.LOGS_RAW,
        LogBatch([log(3_000, "user 42 logged in"), log(4_000, "cache miss for key abc", "WARN")]).encode(),
    )
    await send(publisher, Topics.LOGS_RAW, LogBatch([log(12_000, "user 43 logged in")]).encode())
    await send(publisher, Topics.LOGS_RAW, LogBatch([log(23_000, "user 44 logged in")]).encode())

    def key(name: str, start: int) -> tuple[str, int, int]:
        return (f'{name}{{service="api"}}', T0 + start, 10_000)

    # Rows are sharded by series over the features partitions: wait for every row asserted on.
    names = ("log.records", "log.errors", "log.warnings", "log.new_templates")
    wanted = {key(name, start) for name in names for start in (0, 10_000)}
    await features.until(lambda v: wanted <= set(feature_rows(v)), 60, worker)
    rows = feature_rows(features.values)
    assert rows[key("log.records", 0)]["sum"] == 4
    assert rows[key("log.errors", 0)]["sum"] == 1
    assert rows[key("log.warnings", 0)]["sum"] == 1
    assert rows[key("log.new_templates", 0)]["sum"] == 3  # "user <*> logged in" is one template
    assert rows[key("log.new_templates", 0)]["value"] == 0.3
    assert rows[key("log.new_templates", 10_000)]["sum"] == 0
    assert rows[key("log.errors", 10_000)]["value"] == 0.0
