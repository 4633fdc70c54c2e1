"""What the engine analyses: one case, from the stores (the agent) or from files (``aiops rca analyze``).

Pure data. The engine never does I/O: the agent's gathering and the CLI's file loaders both
build a :class:`Case`, so the same code ranks causes in production, in post-mortems and in
the benchmarks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = ["Case", "CaseChange", "CaseSignal", "SeriesKey", "TraceOrigin"]


@dataclass(frozen=True, slots=True)
class SeriesKey:
    """A series of a service: ``service`` as in the topology, ``metric`` its name (with distinguishing labels)."""

    service: str
    metric: str

    def __str__(self) -> str:
        return f"{self.service}:{self.metric}"


@dataclass(frozen=True, slots=True)
class CaseChange:
    """A deployment or configuration change."""

    ts_ms: int
    service: str
    version: str = ""
    kind: str = "deployment"
    id: str = ""


@dataclass(frozen=True, slots=True)
class CaseSignal:
    """An alert or anomaly of the incident: on which service, what, and when it began."""

    service: str
    name: str
    ts_ms: int


@dataclass(frozen=True, slots=True)
class TraceOrigin:
    """Traces in the window whose first failing span (an error span none of whose children failed) is here."""

    service: str
    count: int
    trace_id: str = ""
    span: str = ""


@dataclass(slots=True)
class Case:
    """One incident's evidence on one time grid.

    ``edges``: call edges ``(caller, callee)`` of the affected subgraph (a fault in a callee shows in
    its callers, so causes flow callee -> caller). ``ts_ms``: the grid, ascending. ``series``: values on
    the grid, NaN where missing. ``onset_ms``: when the incident began if known (the engine finds it
    otherwise). ``target``: the series whose failure is investigated (an SLO), if one is named.
    ``baseline_end_ms``: where normal data ends when it is given apart from the abnormal (a benchmark's
    normal period); otherwise the baseline is everything before onset. ``missing``: sources the
    gathering could not read, and why.
    """

    ts_ms: npt.NDArray[np.int64]
    series: dict[SeriesKey, npt.NDArray[np.float64]]
    edges: list[tuple[str, str]] = field(default_factory=list)
    services: list[str] = field(default_factory=list)
    """Every service considered, with or without series (the incident's first)."""
    incident_services: list[str] = field(default_factory=list)
    changes: list[CaseChange] = field(default_factory=list)
    signals: list[CaseSignal] = field(default_factory=list)
    traces: list[TraceOrigin] = field(default_factory=list)
    priors: dict[tuple[str, str], float] = field(default_factory=dict)
    """Operator feedback as multipliers of a service's prior, keyed ``(service, kind)`` with ``kind`` a
    :class:`~aiops_common.schemas.CauseKind` value or ``"*"`` for any kind: above 1 it was confirmed as a
    cause before, below 1 rejected."""
    onset_ms: int | None = None
    target: SeriesKey | None = None
    baseline_end_ms: int | None = None
    missing: list[str] = field(default_factory=list)

    def all_services(self) -> list[str]:
        """Services of the case: those named, then those of edges and series, each once, in that order."""
        seen: dict[str, None] = dict.fromkeys(self.services)
        for a, b in self.edges:
            seen.setdefault(a)
            seen.setdefault(b)
        for key in self.series:
            seen.setdefault(key.service)
        return list(seen)

    def series_of(self, service: str) -> Iterable[tuple[SeriesKey, npt.NDArray[np.float64]]]:
        return ((k, v) for k, v in self.series.items() if k.service == service)
