"""Agent: RED metrics per service and operation from ``traces.raw`` span batches, published as features."""

from __future__ import annotations

import faust
from aiops_common.schemas import MetricKind, SpanBatch
from aiops_common.topics import Topics, declare

from aiops_stream.checkpoint import CheckpointedStage
from aiops_stream.event_windows import DerivedSamples, EventWindowProcessor, event_window_config
from aiops_stream.settings import StreamSettings
from aiops_stream.window_processor import series_clocks

__all__ = ["REQUEST_KINDS", "install", "red_samples"]

REQUEST_KINDS = frozenset({"SERVER", "CONSUMER"})


def red_samples(value: bytes, offset: int, replaying: bool) -> DerivedSamples:
    """Every request span (kind SERVER or CONSUMER, or a root span) as one event of three series.

    For ``service`` and ``operation`` (the span name), per window:

    - ``red.request_rate{service,operation}``: requests per second (``value``; ``count`` is the number);
    - ``red.error_rate{service,operation}``: the fraction of those requests whose status is ERROR;
    - ``red.latency_s{service,operation}``: their durations, with p50/p95/p99 (``value`` is the mean).

    A known operation that gets no request in a window gets a zero-rate row.
    """
    out = DerivedSamples()
    for span in SpanBatch.decode(value).rows:
        if span.kind not in REQUEST_KINDS and span.parent_span_id:
            continue
        labels = {"service": span.service, "operation": span.name}
        ts = span.end_ns // 1_000_000
        out.add(out.series("red.request_rate", labels, MetricKind.DELTA, "1/s"), ts, 1.0)
        out.add(out.series("red.error_rate", labels, MetricKind.GAUGE, "1"), ts, 1.0 if span.status == "ERROR" else 0.0)
        out.add(out.series("red.latency_s", labels, MetricKind.GAUGE, "s"), ts, span.duration_s)
    return out


def install(app: faust.App, settings: StreamSettings) -> CheckpointedStage:
    source = declare(app, Topics.TRACES_RAW, settings.topic_prefix)
    features = declare(app, Topics.FEATURES, settings.topic_prefix)
    config = event_window_config(settings)
    return CheckpointedStage(
        app,
        "red_metrics",
        source,
        Topics.TRACES_RAW.partitions,
        lambda partition, read: EventWindowProcessor(
            series_clocks(settings, config, "red", partition), features, red_samples, read
        ),
        idle_after_s=settings.idle_flush_after_s,
    )
