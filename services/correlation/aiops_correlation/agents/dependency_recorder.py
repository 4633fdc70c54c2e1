"""Agent: call edges observed in traces (``topology.edges``) into the topology store, source ``traces``."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import faust
from aiops_common.agent_loop import install_store_agent
from aiops_common.schemas import TopologyEdge
from aiops_common.topics import Topics, declare
from aiops_common.topology import Dependency, TopologyStore

from aiops_correlation.settings import CorrelationSettings

__all__ = ["TRACES_SOURCE", "coalesce", "install"]

TRACES_SOURCE = "traces"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

BATCH = 1000
WITHIN_S = 1.0
"""The stream emits one record per edge and window, every edge at each window's close: a second's worth
becomes one store write with one row per edge."""


def coalesce(edges: Iterable[TopologyEdge]) -> list[Dependency]:
    """One dependency per (caller, callee), seen from its earliest window's start to its latest window's end.

    >>> def edge(start_ms: int) -> TopologyEdge:
    ...     return TopologyEdge(caller="api", callee="db", window_start_ms=start_ms, window_length_ms=10_000,
    ...                         calls=3, errors=0, latency_mean_s=0.01, latency_p50_s=0.01, latency_p95_s=0.02,
    ...                         latency_p99_s=0.02, latency_max_s=0.03)
    >>> [(d.caller, d.callee, d.first_seen.second, d.last_seen.second) for d in coalesce([edge(20_000), edge(0)])]
    [('api', 'db', 0, 30)]
    """
    spans: dict[tuple[str, str], tuple[int, int]] = {}
    for edge in edges:
        key = (edge.caller, edge.callee)
        first, last = spans.get(key, (edge.window_start_ms, edge.window_end_ms))
        spans[key] = (min(first, edge.window_start_ms), max(last, edge.window_end_ms))
    return [
        Dependency(caller, callee, frozenset({TRACES_SOURCE}), _at(first), _at(last))
        for (caller, callee), (first, last) in sorted(spans.items())
    ]


def _at(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def install(app: faust.App, settings: CorrelationSettings, store: TopologyStore) -> None:
    topic = declare(app, Topics.TOPOLOGY_EDGES, settings.topic_prefix)

    async def record(edges: list[TopologyEdge]) -> None:
        # The store merges: sources united, first_seen the earliest, last_seen the latest, so a
        # redelivered batch changes nothing.
        await store.upsert_dependencies(coalesce(edges))

    install_store_agent(app, topic, "dependency_recorder", TopologyEdge.decode, record, BATCH, WITHIN_S)
