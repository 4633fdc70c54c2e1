"""Spans, normalized from OTLP traces: the value type of ``traces.raw``."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiops_common.schemas._records import RowBatch

__all__ = ["Span", "SpanBatch"]


@dataclass(slots=True)
class Span:
    trace_id: str  # lowercase hex
    span_id: str
    parent_span_id: str
    service: str
    name: str
    kind: str  # INTERNAL, SERVER, CLIENT, PRODUCER, CONSUMER, UNSPECIFIED
    start_ns: int
    end_ns: int
    status: str = "UNSET"  # UNSET, OK, ERROR
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9


class SpanBatch(RowBatch[Span]):
    schema = "traces.batch"
    row_type = Span
