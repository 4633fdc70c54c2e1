"""Gather one incident's case from the stores: its subgraph, series around onset, changes, signals, traces, priors.

Every source is optional and fallible: one that is not there, fails or takes too long adds a line to
``case.missing`` (``tsdb: ConnectError: ...``) and the case is built from the rest, so an analysis
always comes out. Reads run concurrently and only over the case's window.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import numpy.typing as npt
import structlog
from aiops_common.feedback import FeedbackStore
from aiops_common.schemas import IncidentRecord
from aiops_common.schemas.features import window_length_ms_of
from aiops_common.topology import TopologyStore, from_millis, millis
from aiops_common.tsdb import Series, TimeSeriesStore

from aiops_rca.case import Case, CaseChange, CaseSignal, SeriesKey, TraceOrigin
from aiops_rca.feedback_priors import CausePriors, priors_from_labels
from aiops_rca.settings import RcaSettings
from aiops_rca.trace_index import TraceIndex

__all__ = [
    "SERIES_PRIORITY",
    "Sources",
    "Window",
    "gather_case",
    "own_steps",
    "series_keys",
    "window_of",
]

log = structlog.get_logger(__name__)

T = TypeVar("T")

SERIES_PRIORITY: tuple[str, ...] = ("red.", "log.errors", "log.new_templates", "log.", "anomaly.", "alert.")
"""Series kept first when a service has more than ``rca_max_series_per_service``: RED metrics from spans,
then error logs and new templates, then the rest of the logs; everything else after, by name."""


@dataclass(slots=True)
class Sources:
    """Where a case comes from; None for a source this installation does not have."""

    tsdb: TimeSeriesStore | None
    topology: TopologyStore | None
    feedback: FeedbackStore | None
    traces: TraceIndex | None
    priors: CausePriors | None = None
    """Cause labels already counted in memory (the worker's); None reads them from ``feedback``."""
    unavailable: dict[str, str] = field(default_factory=dict)
    """Why a source is None (``{"tsdb": "cannot open ..."}``), for ``case.missing``."""


@dataclass(frozen=True, slots=True)
class Window:
    """The case's grid: ``start_ms`` to ``end_ms`` (both on it) every ``step_ms``."""

    start_ms: int
    end_ms: int
    step_ms: int

    def grid(self) -> npt.NDArray[np.int64]:
        return np.arange(self.start_ms, self.end_ms + 1, self.step_ms, dtype=np.int64)


def window_of(onset_ms: int, now_ms: int, settings: RcaSettings) -> Window:
    """From ``rca_lookback_s`` before onset to ``rca_after_s`` after it (or now, if sooner), on whole steps.

    >>> w = window_of(1_000_005_000, 1_000_100_000, RcaSettings(rca_lookback_s=60, rca_after_s=900, rca_step_s=10))
    >>> (w.start_ms, w.end_ms, len(w.grid()))
    (999940000, 1000100000, 17)
    """
    step = max(1, int(settings.rca_step_s * 1000))
    start = onset_ms - int(settings.rca_lookback_s * 1000)
    end = max(onset_ms, min(now_ms, onset_ms + int(settings.rca_after_s * 1000)))
    # On whole steps, where the stream stamps its windows' ends, so a grid point meets a sample.
    start -= start % step
    end -= end % step
    return Window(start, max(end, start + step), step)


def series_keys(service: str, series: Sequence[Series]) -> list[SeriesKey]:
    """Each series' key within its service: its name, plus the labels that tell apart its series of that name.

    The ``service`` label is the service itself, and a label with one value among them (the namespace, the
    job) tells nothing apart, so both are left out.

    >>> s = [Series("red.latency_s:value_10s", {"service": "pay", "operation": op, "ns": "shop"}) for op in "ab"]
    >>> [k.metric for k in series_keys("pay", s + [Series("cpu", {"service": "pay", "pod": "p1"})])]
    ['red.latency_s:value_10s{operation="a"}', 'red.latency_s:value_10s{operation="b"}', 'cpu']
    """
    groups: dict[str, list[Series]] = {}
    for s in series:
        groups.setdefault(s.name, []).append(s)
    distinct: dict[str, list[str]] = {}
    for name, group in groups.items():
        labels = {label for s in group for label in s.labels} - {"service"}
        distinct[name] = sorted(label for label in labels if len({s.labels.get(label) for s in group}) > 1)
    keys = []
    for s in series:
        inner = ",".join(f'{label}="{_escape(s.labels.get(label, ""))}"' for label in distinct[s.name])
        keys.append(SeriesKey(service, f"{s.name}{{{inner}}}" if inner else s.name))
    return keys


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _rank(name: str) -> int:
    return next((i for i, prefix in enumerate(SERIES_PRIORITY) if name.startswith(prefix)), len(SERIES_PRIORITY))


async def gather_case(
    incident: IncidentRecord, sources: Sources, settings: RcaSettings, *, now_ms: int | None = None
) -> Case:
    """The case of one incident revision; never raises (a source that fails is named in ``case.missing``)."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    onset = millis(incident.started_at)
    window = window_of(onset, now, settings)
    timeout = settings.rca_source_timeout_s
    missing: list[str] = []
    incident_services = list(dict.fromkeys([*incident.services, *(m.service for m in incident.members if m.service)]))

    # The subgraph first: which series, changes and priors to read depend on it; those are read together.
    services: list[str] = incident_services
    edges: list[tuple[str, str]] = []
    topology = sources.topology
    if topology is None:
        missing.append(_unavailable("topology", sources))
    else:
        try:
            services, edges = await asyncio.wait_for(_subgraph(topology, incident_services, settings.rca_hops), timeout)
        except Exception as exc:  # any backend's error: the case goes on with the incident's own services
            missing.append(_failed("topology", exc))
            if isinstance(exc, TimeoutError):
                # A store that did not answer is not waited on again for the same case: its changes are not read.
                missing.append("changes: not read (the topology store did not answer)")
                topology = None

    series_task = _series(sources.tsdb, services, window, settings, timeout)
    changes_task = _changes(topology, services, onset, window, settings, timeout)
    priors_task = _priors(sources, services, timeout)
    (series, series_missing), (stored_changes, changes_missing), (priors, priors_missing) = await asyncio.gather(
        series_task, changes_task, priors_task
    )
    missing += [m for m in (series_missing, changes_missing, priors_missing) if m]

    changes = {c.id: CaseChange(millis(c.at), c.service, c.version, c.kind, c.id) for c in incident.changes}
    for change in stored_changes:
        changes.setdefault(change.id, change)

    traces: list[TraceOrigin] = []
    if sources.traces is None:
        missing.append(_unavailable("traces", sources))
    else:
        start = onset - int(settings.rca_trace_window_s * 1000)
        traces = sources.traces.origins(services, start, window.end_ms)

    return Case(
        ts_ms=window.grid(),
        series=series,
        edges=edges,
        services=services,
        incident_services=list(incident.services) or incident_services,
        changes=sorted(changes.values(), key=lambda c: (c.ts_ms, c.id)),
        signals=sorted(
            (CaseSignal(m.service, m.name, millis(m.started_at)) for m in incident.members if m.service),
            key=lambda s: (s.ts_ms, s.service, s.name),
        ),
        traces=traces,
        priors=priors,
        onset_ms=onset,
        missing=missing,
    )


def _unavailable(source: str, sources: Sources) -> str:
    return f"{source}: {sources.unavailable.get(source, 'not configured')}"


def _failed(source: str, exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"{source}: no answer in time"
    return f"{source}: {type(exc).__name__}: {exc}"


async def _subgraph(store: TopologyStore, seeds: list[str], hops: int) -> tuple[list[str], list[tuple[str, str]]]:
    """The incident's services, then those within ``hops`` up- and downstream; every call edge among them."""
    around = await store.neighbourhood(seeds, hops, "both")
    services = list(dict.fromkeys([*seeds, *sorted(around.names())]))
    # The walks follow each direction from the seeds, so an edge between two services reached by different
    # walks (a caller's other callee) is not among theirs: one more step from every service finds them all.
    inside = set(services)
    every = await store.neighbourhood(services, 1, "downstream")
    edges = {(e.caller, e.callee) for e in (*around.edges, *every.edges) if e.caller in inside and e.callee in inside}
    return services, sorted(edges)


async def _series(
    tsdb: TimeSeriesStore | None, services: list[str], window: Window, settings: RcaSettings, limit_s: float
) -> tuple[dict[SeriesKey, npt.NDArray[np.float64]], str]:
    if tsdb is None:
        return {}, "tsdb: not configured"
    reads: list[Awaitable[list[Series]]] = [
        asyncio.wait_for(tsdb.query_range({"service": s}, window.start_ms, window.end_ms, window.step_ms), limit_s)
        for s in services
    ]
    answers = await asyncio.gather(*reads, return_exceptions=True)
    grid = window.grid()
    out: dict[SeriesKey, npt.NDArray[np.float64]] = {}
    errors: list[BaseException] = []
    for service, answer in zip(services, answers, strict=True):
        if isinstance(answer, BaseException):
            errors.append(answer)
            continue
        kept = sorted(answer, key=lambda s: (_rank(s.name), s.key))[: settings.rca_max_series_per_service]
        for key, s in zip(series_keys(service, kept), kept, strict=True):
            values = np.full(grid.size, np.nan)
            idx = (s.ts_ms - window.start_ms) // window.step_ms
            ok = (idx >= 0) & (idx < grid.size)
            values[idx[ok]] = s.values[ok]
            period = window_length_ms_of(s.name)
            if period is not None and period > window.step_ms:
                # A stepped query repeats a roll-up's value on every step of its window: kept once, at its own time.
                values[~own_steps(grid, window.step_ms, period)] = np.nan
            out[key] = values
    if errors:
        first = _failed("tsdb", errors[0])
        if len(errors) < len(services):
            first += f" ({len(errors)} of {len(services)} services unread)"
        return out, first
    if not out:
        return out, f"tsdb: no series of {len(services)} services from {from_millis(window.start_ms).isoformat()}"
    return out, ""


def own_steps(grid: npt.NDArray[np.int64], step_ms: int, period_ms: int) -> npt.NDArray[np.bool_]:
    """Which grid points show a new sample of a series sampled every ``period_ms`` (at its multiples, where the
    stream stamps its windows): the first step at or after each multiple. The other steps repeat it.

    >>> own_steps(np.arange(0, 130_000, 10_000), 10_000, 60_000).nonzero()[0].tolist()
    [0, 6, 12]
    """
    return np.asarray(grid // period_ms > (grid - step_ms) // period_ms, dtype=np.bool_)


async def _changes(
    topology: TopologyStore | None,
    services: list[str],
    onset_ms: int,
    window: Window,
    settings: RcaSettings,
    limit_s: float,
) -> tuple[list[CaseChange], str]:
    if topology is None:
        return [], ""  # said once for the topology already
    since = min(window.start_ms, onset_ms - int(settings.rca_change_window_s * 1000))
    try:
        found = await asyncio.wait_for(
            topology.changes(from_millis(since), from_millis(window.end_ms + 1), services), limit_s
        )
    except Exception as exc:  # the incident's own linked changes still count
        return [], _failed("changes", exc)
    return [CaseChange(millis(c.at), c.service, str(c.attributes.get("version", "")), c.kind, c.id) for c in found], ""


async def _priors(sources: Sources, services: list[str], limit_s: float) -> tuple[dict[tuple[str, str], float], str]:
    if sources.priors is not None:
        return sources.priors.priors(services), ""
    if sources.feedback is None:
        return {}, _unavailable("feedback", sources)
    try:
        labels = await asyncio.wait_for(sources.feedback.labels(), limit_s)
    except Exception as exc:  # no feedback: every service keeps its plain prior
        return {}, _failed("feedback", exc)
    return priors_from_labels(labels, services=services), ""
