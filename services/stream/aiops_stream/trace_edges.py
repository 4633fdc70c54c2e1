"""Agents: service call edges from spans, one ``topology.edges`` record per edge per window."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import faust
from aiops_common.schemas import FeatureBatch, MetricKind, Span, SpanBatch, TopologyEdge
from aiops_common.topics import Topics, declare

from aiops_stream.checkpoint import CheckpointedStage, Outbound
from aiops_stream.event_windows import DerivedSamples, event_window_config
from aiops_stream.settings import StreamSettings
from aiops_stream.tumbling import TumblingWindows
from aiops_stream.window_processor import WindowedProcessor

__all__ = ["EdgeJoinProcessor", "edges_from_rows", "install"]


@dataclass(slots=True)
class _Indexed:
    service: str
    ts_ms: int


@dataclass(slots=True)
class _Waiting:
    service: str
    ts_ms: int
    duration_s: float
    error: bool


def edges_from_rows(batch: FeatureBatch) -> list[TopologyEdge]:
    """One record per (caller, callee, window) from the ``edge.*`` rows of a closed batch."""
    by_key: dict[tuple[str, str, int, int], dict[str, dict[str, float]]] = {}
    for row in batch.rows():
        if row.values["count"] <= 0:
            continue
        key = (row.series.labels["caller"], row.series.labels["callee"], row.start_ms, row.length_ms)
        by_key.setdefault(key, {})[row.series.name] = dict(row.values)
    edges = []
    for (caller, callee, start, length), rows in sorted(by_key.items()):
        latency, errors = rows.get("edge.latency_s"), rows.get("edge.errors")
        if latency is None or errors is None:
            continue
        edges.append(
            TopologyEdge(
                caller=caller,
                callee=callee,
                window_start_ms=start,
                window_length_ms=length,
                calls=int(latency["count"]),
                errors=int(errors["sum"]),
                latency_mean_s=latency["mean"],
                latency_p50_s=latency["p50"],
                latency_p95_s=latency["p95"],
                latency_p99_s=latency["p99"],
                latency_max_s=latency["max"],
            )
        )
    return edges


class EdgeJoinProcessor(WindowedProcessor):
    """The span index and edge windows of one partition of the trace-keyed span topic.

    A call is a span whose parent span belongs to another service. Parent and child
    usually come from different services, which ``traces.raw`` shards apart, and one
    edge's calls come from many traces, so a first agent funnels every span batch onto a
    one-partition topic internal to this app; a second keeps a short-lived index of the
    spans (parents by id, children waiting for their parent) and joins them, in whichever
    batch and order they arrive (its watermark follows the slowest ``traces.raw``
    partition), so each edge gets exactly one record per window. (Past one
    worker's worth of spans, the next step is joining on trace-keyed partitions and
    summing calls on edge-keyed ones, deduplicating calls by child span id.) A pair
    further apart in time than ``stream_span_index_ttl_s`` is not joined.
    The joins feed the same tumbling windows as everything else, so edges survive a
    restart the same way (see :mod:`aiops_stream.checkpoint`).
    """

    def __init__(
        self,
        partition: int,
        settings: StreamSettings,
        edges: faust.TopicT,
        read: Callable[[str], bytes | None],
    ) -> None:
        self.ttl_ms = int(settings.stream_span_index_ttl_s * 1000)
        # The index is rebuilt by the replay too: the engine's lookback is the index's reach.
        config = dataclasses.replace(
            event_window_config(settings, (settings.stream_window_s * 1000,)), lookback_ms=self.ttl_ms, emit_empty=False
        )
        super().__init__(TumblingWindows(config, source="edges", partition=partition), read)
        self.edges = edges
        self.spans: dict[tuple[str, str], _Indexed] = {}
        self.waiting: dict[tuple[str, str], list[_Waiting]] = {}
        self.horizon = int(self.restored.get("horizon", -(2**62)))

    def take(self, value: bytes, offset: int, replaying: bool) -> None:
        source, _, value = value.partition(b"|")
        spans = SpanBatch.decode(value).rows
        derived = DerivedSamples()
        for span in spans:
            self._join(span, derived)
        sid, ts, val = derived.arrays()
        ids = self.windows.series_ids(derived.metas)
        # Every span moves the watermark and the replay point, joined or not: the index holds them.
        latest = max(s.end_ns for s in spans) // 1_000_000 if spans else None
        self.windows.add(offset, ids[sid], ts, val, latest_ts=latest, source=int(source or b"0"))

    def emit(self, closed: FeatureBatch) -> list[Outbound]:
        self._evict()
        return [Outbound(self.edges, edge.encode(), key=edge.caller.encode()) for edge in edges_from_rows(closed)]

    def _join(self, span: Span, out: DerivedSamples) -> None:
        ts = span.end_ns // 1_000_000
        if ts < self.horizon:
            return  # older than anything an open window can still take
        key = (span.trace_id, span.span_id)
        if key in self.spans:
            return  # delivered twice
        self.spans[key] = _Indexed(span.service, ts)
        me = _Waiting(span.service, ts, span.duration_s, span.status == "ERROR")
        if span.parent_span_id:
            parent = self.spans.get((span.trace_id, span.parent_span_id))
            if parent is None:
                self.waiting.setdefault((span.trace_id, span.parent_span_id), []).append(me)
            else:
                self._edge(parent, me, out)
        for child in self.waiting.pop(key, []):
            self._edge(self.spans[key], child, out)

    def _edge(self, parent: _Indexed, child: _Waiting, out: DerivedSamples) -> None:
        if parent.service == child.service or abs(parent.ts_ms - child.ts_ms) > self.ttl_ms:
            return
        labels = {"caller": parent.service, "callee": child.service}
        out.add(out.series("edge.latency_s", labels, MetricKind.GAUGE, "s"), child.ts_ms, child.duration_s)
        out.add(out.series("edge.errors", labels, MetricKind.DELTA, "1/s"), child.ts_ms, float(child.error))

    def _evict(self) -> None:
        marks = [m for m in self.windows.closed if m is not None]
        self.horizon = min(marks) - self.ttl_ms
        self.spans = {k: v for k, v in self.spans.items() if v.ts_ms >= self.horizon}
        self.waiting = {k: kept for k, v in self.waiting.items() if (kept := [w for w in v if w.ts_ms >= self.horizon])}

    def checkpoint(self, extra: dict[str, Any] | None = None) -> dict[str, bytes]:
        return super().checkpoint({"horizon": self.horizon, **(extra or {})})


def install(app: faust.App, settings: StreamSettings) -> CheckpointedStage:
    traces = declare(app, Topics.TRACES_RAW, settings.topic_prefix)
    edges = declare(app, Topics.TOPOLOGY_EDGES, settings.topic_prefix)
    # Internal to this app (named after it, as Faust names its changelogs). Only partition 0 carries spans;
    # it has as many as traces.raw so that it matches whichever of the app or the broker creates it first.
    funnel = app.topic(
        f"{app.conf.id}-spans-for-edges",
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=Topics.TRACES_RAW.partitions,
        retention=Topics.TRACES_RAW.retention,
    )

    @app.agent(traces, name="trace_funnel")
    async def forward(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        async for event in stream.events():
            # The source partition travels along: the joiner's watermark waits for the slowest one.
            tagged = b"%d|%s" % (event.message.partition, event.value)
            await (await funnel.send(value=tagged, partition=0))
            yield None

    return CheckpointedStage(
        app,
        "trace_edges",
        funnel,
        Topics.TRACES_RAW.partitions,
        lambda partition, read: EdgeJoinProcessor(partition, settings, edges, read),
        idle_after_s=settings.idle_flush_after_s,
    )
