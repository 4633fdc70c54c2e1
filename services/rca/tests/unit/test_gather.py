"""Gathering a case from real SQLite stores: the subgraph, series on the grid, changes, signals, traces, priors;
a source that is down or absent is named in ``missing`` and the case is built from the rest."""

from __future__ import annotations

import asyncio
import doctest
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from aiops_common.broker import free_port
from aiops_common.feedback import FeedbackStore, open_feedback_store
from aiops_common.schemas import (
    FeedbackLabel,
    FeedbackRecord,
    IncidentMember,
    IncidentRecord,
    IncidentSeverity,
    JoinReason,
    LinkedChange,
    MemberKind,
    MetricBatchBuilder,
)
from aiops_common.schemas.traces import Span
from aiops_common.topology import Change, Dependency, Service, TopologyStore, millis, open_topology_store
from aiops_common.tsdb import TimeSeriesStore, open_tsdb
from aiops_rca import gather
from aiops_rca.case import SeriesKey
from aiops_rca.evidence.change_points import baseline_of
from aiops_rca.feedback_priors import CausePriors
from aiops_rca.gather import Sources, gather_case
from aiops_rca.settings import RcaSettings
from aiops_rca.trace_index import TraceIndex

pytestmark = pytest.mark.unit

ONSET = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ONSET_MS = millis(ONSET)
NOW_MS = ONSET_MS + 600_000
SERVICES = ["frontend", "checkout", "payment", "db", "inventory", "search"]
CALLS = [("frontend", "checkout"), ("checkout", "payment"), ("payment", "db"), ("checkout", "inventory")]
SETTINGS = RcaSettings(rca_lookback_s=1800, rca_after_s=900, rca_step_s=10)


@dataclass
class Stores:
    tsdb: TimeSeriesStore
    topology: TopologyStore
    feedback: FeedbackStore


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[Stores]:
    tsdb = open_tsdb(f"sqlite:///{tmp_path / 'tsdb.sqlite'}")
    topology = open_topology_store(f"sqlite:///{tmp_path / 'topology.sqlite'}")
    feedback = open_feedback_store(f"sqlite:///{tmp_path / 'feedback.sqlite'}")
    builder = MetricBatchBuilder()
    for ts in range(ONSET_MS - 7200_000, NOW_MS + 1, 10_000):
        after = ts >= ONSET_MS
        for service in SERVICES:
            slow = 2.0 if after and service == "payment" else 0.1
            builder.add("red.latency_s:value_10s", {"service": service, "operation": "GET /"}, ts, slow)
            builder.add("log.errors:value_10s", {"service": service, "namespace": "shop"}, ts, 5.0 * after)
        builder.add("red.latency_s:value_10s", {"service": "payment", "operation": "POST /pay"}, ts, 0.2)
        for i in range(70):  # more raw series than a service may bring: the RED and log ones are kept first
            builder.add("cpu_seconds", {"service": "db", "pod": f"db-{i:02d}"}, ts, 1.0)
    await tsdb.write(builder.build())
    await topology.upsert_services(Service(name) for name in SERVICES)
    await topology.upsert_dependencies(
        Dependency(a, b, frozenset({"file"}), ONSET - timedelta(days=1), ONSET) for a, b in CALLS
    )
    await topology.add_changes(
        [
            Change("d-pay", "payment", ONSET - timedelta(minutes=8), attributes={"version": "v2.4.1"}),
            Change("d-old", "payment", ONSET - timedelta(days=2), attributes={"version": "v2.3.0"}),
            Change("d-search", "search", ONSET - timedelta(minutes=5)),
        ]
    )
    await feedback.add_label(
        FeedbackRecord(
            subject_id="inc-old",
            subject_kind="incident",
            label=FeedbackLabel.CONFIRMED_CAUSE,
            by="alice",
            at=ONSET - timedelta(days=3),
            related_id="payment",
        )
    )
    yield Stores(tsdb, topology, feedback)
    await tsdb.close()
    await topology.close()
    await feedback.close()


def incident() -> IncidentRecord:
    def member(service: str, name: str, after_s: int) -> IncidentMember:
        at = ONSET + timedelta(seconds=after_s)
        return IncidentMember(
            fingerprint=f"{service}-{name}",
            kind=MemberKind.ANOMALY,
            name=name,
            service=service,
            started_at=at,
            reason=JoinReason(rule="seed" if after_s == 0 else "topology"),
            joined_at=at,
        )

    return IncidentRecord(
        id="inc-1",
        revision=3,
        title="payment slow",
        severity=IncidentSeverity.CRITICAL,
        services=["payment", "checkout"],
        started_at=ONSET,
        updated_at=ONSET + timedelta(minutes=2),
        members=[member("payment", "red.latency_s", 0), member("checkout", "red.latency_s", 40)],
        changes=[
            LinkedChange(
                id="d-pay", service="payment", version="v2.4.1", at=ONSET - timedelta(minutes=8), before_onset_s=480
            ),
        ],
    )


def traces() -> TraceIndex:
    index = TraceIndex()
    at = (ONSET_MS + 30_000) * 1_000_000
    index.add(
        [
            Span("t1", "a", "", "frontend", "GET /", "SERVER", at, at + 9, "ERROR"),
            Span("t1", "b", "a", "checkout", "POST /order", "SERVER", at, at + 8, "ERROR"),
            Span("t1", "c", "b", "payment", "charge", "SERVER", at, at + 7, "ERROR"),
        ]
    )
    return index


def test_doctests() -> None:
    assert doctest.testmod(gather).failed == 0


async def test_a_case_from_every_store(stores: Stores) -> None:
    sources = Sources(stores.tsdb, stores.topology, stores.feedback, traces())
    case = await gather_case(incident(), sources, SETTINGS, now_ms=NOW_MS)

    assert case.missing == []
    # The incident's services first, then those within two hops up and down; not the sibling nor the stranger.
    assert case.services[:2] == ["payment", "checkout"]
    assert set(case.services) == {"payment", "checkout", "frontend", "db", "inventory"}
    assert case.incident_services == ["payment", "checkout"]
    assert set(case.edges) == set(CALLS)
    # The grid: 30 min before onset to now (10 min after), every 10 s.
    assert case.ts_ms[0] == ONSET_MS - 1800_000 and case.ts_ms[-1] == NOW_MS
    assert np.all(np.diff(case.ts_ms) == 10_000)
    latency = case.series[SeriesKey("payment", 'red.latency_s:value_10s{operation="GET /"}')]
    onset_at = int(np.searchsorted(case.ts_ms, ONSET_MS))
    assert latency.shape == case.ts_ms.shape
    assert np.all(latency[:onset_at] == 0.1) and np.all(latency[onset_at:] == 2.0)
    # One operation elsewhere: the name alone; a label with one value (namespace) tells nothing apart.
    assert SeriesKey("checkout", "red.latency_s:value_10s") in case.series
    assert SeriesKey("checkout", "log.errors:value_10s") in case.series
    db = [k.metric for k in case.series if k.service == "db"]
    assert len(db) == SETTINGS.rca_max_series_per_service
    assert db[:2] == ["red.latency_s:value_10s", "log.errors:value_10s"]
    assert 'cpu_seconds{pod="db-00"}' in db
    assert not any(k.service == "search" for k in case.series)
    # Changes: the incident's and the store's within the change window, each once; signals from members.
    assert [(c.id, c.service, c.version) for c in case.changes] == [("d-pay", "payment", "v2.4.1")]
    assert [(s.service, s.ts_ms - ONSET_MS) for s in case.signals] == [("payment", 0), ("checkout", 40_000)]
    assert [(t.service, t.count, t.span) for t in case.traces] == [("payment", 1, "charge")]
    assert case.priors == {("payment", "*"): 2.0}
    assert case.onset_ms == ONSET_MS


async def test_in_memory_priors_are_used_over_the_store(stores: Stores) -> None:
    priors = CausePriors()
    priors.confirmed[("db", "saturation")] = 4
    sources = Sources(stores.tsdb, stores.topology, stores.feedback, traces(), priors=priors)
    case = await gather_case(incident(), sources, SETTINGS, now_ms=NOW_MS)
    assert case.priors == {("db", "saturation"): 5.0}


async def test_the_window_ends_at_now_and_at_most_after_s_past_onset(stores: Stores) -> None:
    sources = Sources(stores.tsdb, stores.topology, stores.feedback, traces())
    early = await gather_case(incident(), sources, SETTINGS, now_ms=ONSET_MS + 95_000)
    assert early.ts_ms[-1] == ONSET_MS + 90_000
    late = await gather_case(incident(), sources, SETTINGS, now_ms=ONSET_MS + 86_400_000)
    assert late.ts_ms[-1] == ONSET_MS + 900_000


async def test_an_unreachable_tsdb_and_absent_sources_leave_a_case_from_the_rest(stores: Stores) -> None:
    down = open_tsdb(f"prometheus://127.0.0.1:{free_port()}")  # nothing listens there
    try:
        sources = Sources(down, stores.topology, None, None, unavailable={"feedback": "cannot open: bad url"})
        case = await gather_case(incident(), sources, SETTINGS, now_ms=NOW_MS)
    finally:
        await down.close()
    assert case.series == {}
    assert [m.split(":")[0] for m in case.missing] == ["tsdb", "feedback", "traces"]
    assert "feedback: cannot open: bad url" in case.missing
    assert set(case.edges) == set(CALLS) and len(case.signals) == 2 and case.changes


async def test_without_topology_the_incidents_services_remain(stores: Stores) -> None:
    class BrokenTopology:
        url = "broken://"

        async def neighbourhood(self, *args: object, **kwargs: object) -> None:
            raise ConnectionError("topology store is down")

        async def changes(self, *args: object, **kwargs: object) -> None:
            raise ConnectionError("topology store is down")

    sources = Sources(stores.tsdb, BrokenTopology(), stores.feedback, traces())  # type: ignore[arg-type]  # only what gathering calls
    case = await gather_case(incident(), sources, SETTINGS, now_ms=NOW_MS)
    assert case.services == ["payment", "checkout"] and case.edges == []
    assert any(m.startswith("topology: ConnectionError") for m in case.missing)
    assert any(m.startswith("changes: ConnectionError") for m in case.missing)
    assert {k.service for k in case.series} == {"payment", "checkout"}
    assert [c.id for c in case.changes] == ["d-pay"]  # the incident's own

    none = await gather_case(incident(), Sources(None, None, None, None), SETTINGS, now_ms=NOW_MS)
    assert [m.split(":")[0] for m in none.missing] == ["topology", "tsdb", "feedback", "traces"]
    assert none.services == ["payment", "checkout"] and len(none.signals) == 2


async def test_a_topology_store_that_does_not_answer_is_waited_on_once(stores: Stores) -> None:
    held: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # a stopped graph database: the connection is accepted, nothing is answered
        while await reader.read(65536):
            pass

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    hung = open_topology_store(f"bolt://127.0.0.1:{server.sockets[0].getsockname()[1]}")
    settings = SETTINGS.model_copy(update={"rca_source_timeout_s": 0.5})
    try:
        case = await gather_case(
            incident(), Sources(stores.tsdb, hung, stores.feedback, traces()), settings, now_ms=NOW_MS
        )
    finally:
        await hung.close()
        for writer in held:
            writer.close()
        server.close()
    assert "topology: no answer in time" in case.missing
    assert "changes: not read (the topology store did not answer)" in case.missing
    assert case.services == ["payment", "checkout"] and {k.service for k in case.series} == {"payment", "checkout"}
    assert [c.id for c in case.changes] == ["d-pay"]  # the incident's own


async def test_a_roll_up_is_read_at_its_own_sample_times_not_repeated_on_every_step(tmp_path: Path) -> None:
    # A 300 s roll-up with three windows before onset and a 2 % drop after. The stepped query repeats each
    # value on the 30 steps of its window; the case keeps it once, at its window's time.
    tsdb = open_tsdb(f"sqlite:///{tmp_path / 'tsdb.sqlite'}")
    builder = MetricBatchBuilder()
    own = [ONSET_MS - 900_000, ONSET_MS - 600_000, ONSET_MS - 300_000, ONSET_MS, ONSET_MS + 300_000]
    for ts, value in zip(own, [0.2, 0.2000003, 0.2, 0.196, 0.196], strict=True):
        builder.add("red.latency_s:value_300s", {"service": "payment"}, ts, value)
    for ts in range(ONSET_MS - 900_000, ONSET_MS + 600_001, 10_000):
        builder.add("red.latency_s:value_10s", {"service": "payment"}, ts, 0.2)
    await tsdb.write(builder.build())
    try:
        settings = RcaSettings(rca_lookback_s=900, rca_after_s=600, rca_step_s=10)
        # Now just before the next window's time (a step on it would show the last value again, the next sample
        # not being there yet).
        case = await gather_case(incident(), Sources(tsdb, None, None, None), settings, now_ms=ONSET_MS + 599_000)
    finally:
        await tsdb.close()
    rollup = case.series[SeriesKey("payment", "red.latency_s:value_300s")]
    assert case.ts_ms[np.isfinite(rollup)].tolist() == own
    assert rollup[np.isfinite(rollup)].tolist() == [0.2, 0.2000003, 0.2, 0.196, 0.196]
    # A 10 s series on the 10 s grid is every step, as before.
    assert np.isfinite(case.series[SeriesKey("payment", "red.latency_s:value_10s")]).all()
    # Its baseline is its three windows, not 90 repeated steps: too few to score.
    assert baseline_of(rollup[case.ts_ms < ONSET_MS]) is None
