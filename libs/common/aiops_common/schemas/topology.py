"""Service call edges observed in traces: the value type of ``topology.edges``."""

from __future__ import annotations

from pydantic import Field

from aiops_common.schemas._model import VersionedRecord

__all__ = ["TopologyEdge"]


class TopologyEdge(VersionedRecord):
    """Calls from one service to another during one tumbling window.

    A call is a span whose parent span belongs to another service; its latency is
    the child (callee) span's duration and it is an error when that span's status
    is ``ERROR``. The ``id`` is deterministic, so a record delivered again after a
    restart is recognised as the same one.
    """

    schema_name = "topology.edge"

    caller: str
    callee: str
    window_start_ms: int
    window_length_ms: int
    calls: int = Field(ge=0)
    errors: int = Field(ge=0)
    latency_mean_s: float
    latency_p50_s: float
    latency_p95_s: float
    latency_p99_s: float
    latency_max_s: float

    @property
    def id(self) -> str:
        return f"{self.caller}->{self.callee}@{self.window_start_ms}/{self.window_length_ms}"

    @property
    def window_end_ms(self) -> int:
        return self.window_start_ms + self.window_length_ms

    @property
    def error_ratio(self) -> float:
        return self.errors / self.calls if self.calls else 0.0
