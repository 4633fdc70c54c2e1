"""First failing spans of traces, counted per minute and service in bounded memory: the RCA's trace evidence.

A trace's first failing span is an ERROR span none of whose children is an ERROR span: where the error
began before its callers passed it on. Only ERROR spans matter for that (a child that did not fail
changes nothing), so the index keeps only those, per trace, for a while.

Spans of one trace arrive in several batches (each service's spans on its own partition, exporters
flushing at their own pace), so a count is corrected as the rest of a trace comes: an ERROR span
counted as an origin stops being one when an ERROR child of it arrives later, and that child is
counted instead (if none of its own children failed). A trace's ERROR spans are kept until the trace
has been quiet for ``pending_s`` of event time, or until more than ``max_pending`` traces are pending
(the oldest go first); after that a late span of it is judged on its own.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from aiops_common.schemas.traces import Span

from aiops_rca.case import TraceOrigin

__all__ = ["MINUTE_MS", "TraceIndex", "first_failing_spans"]

MINUTE_MS = 60_000


def first_failing_spans(spans: Iterable[Span]) -> list[tuple[str, str, str, int]]:
    """``(trace_id, service, span name, start ms)`` of every ERROR span none of whose children failed.

    >>> a = Span("t1", "a", "", "frontend", "GET /", "SERVER", 0, 9_000_000, "ERROR")
    >>> b = Span("t1", "b", "a", "payment", "charge", "SERVER", 1_000_000, 8_000_000, "ERROR")
    >>> c = Span("t1", "c", "b", "db", "SELECT", "CLIENT", 2_000_000, 3_000_000, "OK")
    >>> first_failing_spans([a, b, c])
    [('t1', 'payment', 'charge', 1)]
    """
    errors = [s for s in spans if s.status == "ERROR"]
    failed_parents = {(s.trace_id, s.parent_span_id) for s in errors if s.parent_span_id}
    return sorted(
        (s.trace_id, s.service, s.name, s.start_ns // 1_000_000)
        for s in errors
        if (s.trace_id, s.span_id) not in failed_parents
    )


@dataclass(slots=True)
class _ErrorSpan:
    parent: str
    service: str
    name: str
    bucket: int
    origin: bool = False


@dataclass(slots=True)
class _Pending:
    spans: dict[str, _ErrorSpan] = field(default_factory=dict)
    last_ms: int = 0


@dataclass(slots=True)
class _Count:
    count: int
    trace_id: str
    span: str


class TraceIndex:
    """Counts of first failing spans per (minute, service), with an example trace each; see the module docstring.

    ``horizon_s``: counts older than this (event time, behind the newest span seen) are dropped.

    >>> index = TraceIndex()
    >>> index.add([Span("t1", "a", "", "frontend", "GET /", "SERVER", 0, 9_000_000, "ERROR")])
    >>> [(o.service, o.count) for o in index.origins(["frontend", "payment"], 0, 60_000)]
    [('frontend', 1)]
    >>> index.add([Span("t1", "b", "a", "payment", "charge", "SERVER", 1_000_000, 8_000_000, "ERROR")])
    >>> [(o.service, o.count, o.span) for o in index.origins(["frontend", "payment"], 0, 60_000)]
    [('payment', 1, 'charge')]
    """

    def __init__(self, horizon_s: float = 3 * 3600.0, pending_s: float = 300.0, max_pending: int = 100_000) -> None:
        self.horizon_ms = int(horizon_s * 1000)
        self.pending_ms = int(pending_s * 1000)
        self.max_pending = max_pending
        self.newest_ms = 0
        self._buckets: dict[int, dict[str, _Count]] = {}
        self._pending: OrderedDict[str, _Pending] = OrderedDict()

    def __len__(self) -> int:
        """Origins counted over every kept minute."""
        return sum(c.count for counts in self._buckets.values() for c in counts.values())

    def add(self, spans: Iterable[Span]) -> None:
        """Take a batch of spans (any traces, any order); only ERROR spans are looked at."""
        for span in spans:
            if span.status != "ERROR":
                continue
            ts_ms = span.start_ns // 1_000_000
            self.newest_ms = max(self.newest_ms, ts_ms)
            trace = self._pending.get(span.trace_id)
            if trace is None:
                trace = self._pending[span.trace_id] = _Pending()
            else:
                self._pending.move_to_end(span.trace_id)
            trace.last_ms = max(trace.last_ms, ts_ms)
            if span.span_id in trace.spans:
                continue  # delivered again
            entry = _ErrorSpan(span.parent_span_id, span.service, span.name, ts_ms - ts_ms % MINUTE_MS)
            trace.spans[span.span_id] = entry
            parent = trace.spans.get(span.parent_span_id) if span.parent_span_id else None
            if parent is not None and parent.origin:
                parent.origin = False
                self._count(parent, span.trace_id, -1)
            if not any(other.parent == span.span_id for other in trace.spans.values()):
                entry.origin = True
                self._count(entry, span.trace_id, 1)
        self._expire()

    def origins(self, services: Iterable[str], start_ms: int, end_ms: int) -> list[TraceOrigin]:
        """Traces whose first failing span began in ``[start_ms, end_ms]`` (to the minute) on these services,
        most first, then by service."""
        wanted = set(services)
        totals: dict[str, _Count] = {}
        first = start_ms - start_ms % MINUTE_MS
        for bucket in sorted(self._buckets):
            if bucket < first or bucket > end_ms:
                continue
            for service, count in self._buckets[bucket].items():
                if service not in wanted:
                    continue
                total = totals.get(service)
                if total is None:
                    totals[service] = _Count(count.count, count.trace_id, count.span)
                else:
                    total.count += count.count
        ranked = sorted(totals.items(), key=lambda item: (-item[1].count, item[0]))
        return [TraceOrigin(service, c.count, c.trace_id, c.span) for service, c in ranked if c.count > 0]

    def _count(self, span: _ErrorSpan, trace_id: str, n: int) -> None:
        counts = self._buckets.setdefault(span.bucket, {})
        count = counts.get(span.service)
        if count is None:
            counts[span.service] = _Count(n, trace_id, span.name)
            return
        count.count += n
        if count.count <= 0:
            del counts[span.service]
            if not counts:
                del self._buckets[span.bucket]

    def _expire(self) -> None:
        settled = self.newest_ms - self.pending_ms
        while self._pending:
            trace_id, trace = next(iter(self._pending.items()))
            if trace.last_ms >= settled and len(self._pending) <= self.max_pending:
                break
            del self._pending[trace_id]
        oldest = self.newest_ms - self.horizon_ms
        for bucket in [b for b in self._buckets if b < oldest - MINUTE_MS]:
            del self._buckets[bucket]
