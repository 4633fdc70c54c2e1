"""Incidents to root causes through real workers: replayed history in the SQLite TSDB, a topology and a fault on
payment, anomalies into the correlation worker -> an incident -> the RCA worker's result on ``rca.results``, in
``rca_results`` and on the stored incident; the TSDB down -> a degraded result; SIGKILL -> no duplicates."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiops_cli.testing import WorkerProcess, worker_env
from aiops_common.broker import Publisher, free_port
from aiops_common.broker.publisher import Message
from aiops_common.broker.reader import read_to_end
from aiops_common.documents import open_document_store
from aiops_common.feedback import open_feedback_store
from aiops_common.schemas import (
    AnomalyRecord,
    EvidenceKind,
    FeedbackLabel,
    FeedbackRecord,
    IncidentRecord,
    MetricBatchBuilder,
    RcaResult,
    RcaStatus,
    rca_result_id,
)
from aiops_common.testing.eventually import scaled
from aiops_common.testing.records import service_anomaly
from aiops_common.topics import Topics, TopicSpec
from aiops_common.topology import Dependency, Service, millis, open_topology_store
from aiops_common.tsdb import open_tsdb

pytestmark = pytest.mark.functional

NOW = datetime.now(UTC).replace(microsecond=0)
ONSET = NOW - timedelta(minutes=5)
STEP_S = 10

# frontend -> checkout -> payment -> db ; search stands alone.
SERVICES = ["frontend", "checkout", "payment", "db", "search"]
CALLS = [("frontend", "checkout"), ("checkout", "payment"), ("payment", "db")]
# Three chains of their own, for incidents that never group with one another.
CHAINS = [(f"web{i}", f"api{i}", f"store{i}") for i in range(3)]


@dataclass
class Platform:
    """A correlation and an RCA worker on the session broker, under one topic prefix and data folder."""

    broker_url: str
    prefix: str
    data_dir: Path
    tmp: Path
    started: list[WorkerProcess] = field(default_factory=list)

    def start(self, service: str, **settings: object) -> WorkerProcess:
        env = worker_env(self.broker_url, self.prefix, self.data_dir, **settings)
        log = self.tmp / f"{service}-{len(self.started)}.log"
        worker = WorkerProcess.start(service, env, log, http_port=free_port())
        self.started.append(worker)
        return worker

    def start_correlation(self) -> WorkerProcess:
        return self.start("correlation", correlate_tick_s=1, correlate_checkpoint_interval_s=1)

    def start_rca(self, **settings: object) -> WorkerProcess:
        return self.start("rca", rca_debounce_s=0.5, **settings)

    async def publish_anomalies(self, anomalies: list[AnomalyRecord]) -> None:
        publisher = Publisher(self.broker_url, self.prefix)
        try:
            await publisher.publish(
                [Message(Topics.ANOMALIES, a.encode(), key=a.series_key.encode()) for a in anomalies]
            )
        finally:
            await publisher.stop()

    async def read(self, spec: TopicSpec) -> list[bytes]:
        """Every value on the topic up to its end as of now."""
        values: list[bytes] = []
        await read_to_end(self.broker_url, spec, self.prefix, values.append)
        return values

    async def incidents(self) -> dict[str, IncidentRecord]:
        """The newest revision of every incident on ``incidents`` so far."""
        newest: dict[str, IncidentRecord] = {}
        for incident in (IncidentRecord.decode(v) for v in await self.read(Topics.INCIDENTS)):
            if incident.id not in newest or incident.revision > newest[incident.id].revision:
                newest[incident.id] = incident
        return newest

    async def results(self) -> list[RcaResult]:
        return [RcaResult.decode(v) for v in await self.read(Topics.RCA_RESULTS)]

    async def documents(self, collection: str) -> dict[str, dict[str, Any]]:
        store = open_document_store(f"sqlite:///{self.data_dir / 'documents.sqlite'}")
        try:
            page = await store.query(collection, limit=100)
            return {doc.id: doc.body for doc in page.documents}
        finally:
            await store.close()


@pytest.fixture
def platform(broker_url: str, topic_prefix: str, tmp_path: Path) -> Iterator[Platform]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    asyncio.run(_load_topology(f"sqlite:///{data_dir / 'topology.sqlite'}"))
    platform = Platform(broker_url, topic_prefix, data_dir, tmp_path)
    try:
        yield platform
    finally:
        for worker in platform.started:
            worker.stop()


async def _load_topology(url: str) -> None:
    store = open_topology_store(url)
    try:
        names = SERVICES + [s for chain in CHAINS for s in chain]
        await store.upsert_services(Service(name) for name in names)
        calls = CALLS + [(a, b) for chain in CHAINS for a, b in itertools.pairwise(chain)]
        await store.upsert_dependencies(
            Dependency(a, b, frozenset({"file"}), ONSET - timedelta(days=1), ONSET) for a, b in calls
        )
    finally:
        await store.close()


def replay_history(tsdb_url: str) -> None:
    """Two hours of 10 s RED and log series for every service, as the stream writes them, then the fault:
    payment's latency and errors jump at onset; checkout's latency follows 20 s later and frontend's 40 s
    later, each amplified (they wait on payment and retry); db and search carry on."""
    rng = np.random.default_rng(11)
    start = millis(ONSET) - 2 * 3600_000
    ts = np.arange(start - start % 10_000, millis(NOW) + 1, STEP_S * 1000)
    after = {s: ts >= millis(ONSET) + lag for s, lag in [("payment", 0), ("checkout", 20_000), ("frontend", 40_000)]}
    base = {"frontend": 0.12, "checkout": 0.08, "payment": 0.05, "db": 0.01, "search": 0.03}
    builder = MetricBatchBuilder()
    for service in SERVICES:
        latency = base[service] * (1 + 0.05 * rng.standard_normal(ts.size))
        errors = np.abs(0.002 * rng.standard_normal(ts.size))
        rate = 50 * (1 + 0.05 * rng.standard_normal(ts.size))
        logs = rng.poisson(0.2, ts.size).astype(float)
        if service in after:
            hit = after[service]
            amplify = {"payment": 1.0, "checkout": 1.3, "frontend": 1.6}[service]
            latency[hit] += 0.8 * amplify * (1 + 0.05 * rng.standard_normal(int(hit.sum())))
            errors[hit] += 0.2 * amplify
            logs[hit] += rng.poisson(20 * amplify, int(hit.sum()))
        labels = {"service": service, "operation": f"{service} call"}
        for name, values in [
            ("red.latency_s:value_10s", latency),
            ("red.error_rate:value_10s", errors),
            ("red.request_rate:value_10s", rate),
        ]:
            for t, v in zip(ts.tolist(), values.tolist(), strict=True):
                builder.add(name, labels, t, v)
        for t, v in zip(ts.tolist(), logs.tolist(), strict=True):
            builder.add("log.errors:value_10s", {"service": service}, t, v)

    async def write() -> None:
        store = open_tsdb(tsdb_url)
        try:
            await store.write(builder.build())
        finally:
            await store.close()

    asyncio.run(write())


def anomaly(series: str, service: str, at: datetime) -> AnomalyRecord:
    return service_anomaly(series, service, at)


def fault_anomalies() -> list[AnomalyRecord]:
    return [
        anomaly("red.latency_s:value_10s", "payment", ONSET),
        anomaly("red.latency_s:value_10s", "checkout", ONSET + timedelta(seconds=20)),
        anomaly("red.latency_s:value_10s", "frontend", ONSET + timedelta(seconds=40)),
    ]


async def analysed(platform: Platform, worker: WorkerProcess, services: set[str]) -> tuple[IncidentRecord, RcaResult]:
    """The incident of these services and the result of its newest revision, once both are there."""

    async def found() -> tuple[IncidentRecord, RcaResult] | None:
        incidents = [i for i in (await platform.incidents()).values() if {m.service for m in i.members} == services]
        if not incidents:
            return None
        (incident,) = incidents
        results = [r for r in await platform.results() if r.incident_id == incident.id]
        newest = [r for r in results if r.incident_revision == incident.revision]
        return (incident, newest[0]) if newest else None

    return await worker.eventually(found, scaled(90), f"an RCA result for the incident of {sorted(services)}")


def test_a_fault_on_payment_is_ranked_first_with_its_evidence(platform: Platform) -> None:
    replay_history(f"sqlite:///{platform.data_dir / 'tsdb.sqlite'}")
    correlation = platform.start_correlation()
    rca = platform.start_rca()

    async def run() -> tuple[IncidentRecord, RcaResult]:
        await correlation.until_ready()
        await rca.until_ready()
        await platform.publish_anomalies(fault_anomalies())
        return await analysed(platform, rca, {"payment", "checkout", "frontend"})

    incident, result = asyncio.run(run())
    assert result.id == rca_result_id(incident.id, incident.revision)
    assert result.status == RcaStatus.OK, result.missing
    assert result.top is not None and result.top.service == "payment", [
        (c.service, c.probability) for c in result.causes
    ]
    assert {"payment", "checkout", "frontend", "db"} <= set(result.services)
    assert "search" not in result.services
    series = [e for e in result.top.evidence if e.kind == EvidenceKind.SERIES]
    assert series and all(e.series and e.onset is not None for e in series)
    assert abs((min(e.onset for e in series if e.onset) - ONSET).total_seconds()) <= 60
    assert result.top.metrics and result.top.metrics[0].series

    async def stored() -> tuple[dict[str, Any], dict[str, Any]] | None:
        rca_docs = await platform.documents("rca_results")
        incidents = await platform.documents("incidents")
        on_incident = incidents.get(incident.id, {}).get("rca")
        if result.id in rca_docs and on_incident and on_incident["id"] == result.id:
            return rca_docs[result.id], incidents[incident.id]
        return None

    doc, incident_doc = asyncio.run(rca.eventually(stored, scaled(60), "the result in the document store"))
    assert doc["causes"][0]["service"] == "payment" and doc["incident_revision"] == incident.revision
    assert incident_doc["revision"] >= incident.revision and incident_doc["members"]
    summary = incident_doc["rca"]
    assert summary["revision"] == incident.revision and summary["status"] == "ok"
    assert summary["causes"][0]["service"] == "payment" and summary["causes"][0]["kind"]
    assert 0 < summary["causes"][0]["probability"] <= 1

    # An operator confirms the cause: the label is kept in the feedback store, for the priors and evaluation.
    label = FeedbackRecord(
        subject_id=incident.id,
        subject_kind="incident",
        label=FeedbackLabel.CONFIRMED_CAUSE,
        by="alice",
        at=NOW,
        related_id="payment",
    )

    async def kept() -> bool:
        store = open_feedback_store(f"sqlite:///{platform.data_dir / 'feedback.sqlite'}")
        try:
            return any(f.id == label.id for f in await store.labels(incident.id))
        finally:
            await store.close()

    async def confirm() -> bool:
        publisher = Publisher(platform.broker_url, platform.prefix)
        try:
            await publisher.publish([Message(Topics.FEEDBACK, label.encode(), key=incident.id.encode())])
        finally:
            await publisher.stop()
        return await rca.eventually(kept, scaled(60), "the cause label in the feedback store")

    assert asyncio.run(confirm())


def test_tsdb_down_gives_a_degraded_result_from_what_is_left(platform: Platform) -> None:
    correlation = platform.start_correlation()
    rca = platform.start_rca(tsdb_url=f"prometheus://127.0.0.1:{free_port()}")  # nothing listens there

    async def run() -> tuple[IncidentRecord, RcaResult]:
        await correlation.until_ready()
        await rca.until_ready()
        await platform.publish_anomalies(fault_anomalies())
        return await analysed(platform, rca, {"payment", "checkout", "frontend"})

    _, result = asyncio.run(run())
    assert result.status == RcaStatus.DEGRADED
    assert any(m.startswith("tsdb") for m in result.missing), result.missing
    assert result.causes, "a ranking from the signals and the topology"
    assert result.causes[0].service == "payment", [(c.service, c.probability) for c in result.causes]
    rca.check_alive()


def test_sigkill_and_restart_give_one_result_per_revision(platform: Platform) -> None:
    correlation = platform.start_correlation()
    rca = platform.start_rca()
    waves = [
        [anomaly("red.error_rate:value_10s", chain[-1 - w], ONSET + timedelta(seconds=15 * w)) for chain in CHAINS]
        for w in range(3)
    ]

    async def first() -> None:
        await correlation.until_ready()
        await rca.until_ready()
        await platform.publish_anomalies(waves[0])

        async def some_results() -> bool:
            return len(await platform.results()) >= 1

        await rca.eventually(some_results, scaled(90), "a first result")

    asyncio.run(first())
    rca.kill()

    async def second() -> WorkerProcess:
        await platform.publish_anomalies(waves[1])  # incidents keep coming while no RCA worker runs
        restarted = platform.start_rca()
        await restarted.until_ready()
        await platform.publish_anomalies(waves[2])
        return restarted

    restarted = asyncio.run(second())

    async def every_newest_revision() -> tuple[dict[str, IncidentRecord], list[RcaResult]] | None:
        incidents = {i.id: i for i in (await platform.incidents()).values() if i.merged_into is None}
        grown = [i for i in incidents.values() if len(i.members) == 3]
        shapes = [(i.id, i.revision, i.status.value, sorted(m.service for m in i.members)) for i in incidents.values()]
        assert len(grown) == len(CHAINS), shapes
        results = await platform.results()
        done = {(r.incident_id, r.incident_revision) for r in results}
        waiting = [(i.id, i.revision, i.status.value, len(i.members)) for i in incidents.values()]
        assert all((i.id, i.revision) in done for i in incidents.values()), (waiting, sorted(done))
        return incidents, results

    incidents, results = asyncio.run(
        restarted.eventually(every_newest_revision, scaled(120), "a result for every incident's newest revision")
    )
    keys = [(r.incident_id, r.incident_revision) for r in results]
    assert len(keys) == len(set(keys)), sorted(keys)
    assert {r.incident_id for r in results} == set(incidents)
    assert all(r.id == rca_result_id(r.incident_id, r.incident_revision) for r in results)
