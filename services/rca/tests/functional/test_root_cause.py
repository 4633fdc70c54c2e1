"""Incidents to root causes through real workers: replayed history in the SQLite TSDB, a topology and a fault on
payment, anomalies into the correlation worker -> an incident -> the RCA worker's result on ``rca.results``, in
``rca_results`` and on the stored incident; the TSDB down -> a degraded result; SIGKILL -> no duplicates."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiops_cli.testing import WorkerProcess, worker_env
from aiops_common.broker import free_port
from aiops_common.feedback import open_feedback_store
from aiops_common.schemas import (
    AnomalyRecord,
    EvidenceKind,
    FeedbackLabel,
    FeedbackRecord,
    IncidentRecord,
    RcaResult,
    RcaStatus,
    rca_result_id,
)
from aiops_common.testing.eventually import scaled
from aiops_common.testing.records import incident_revision, service_anomaly
from aiops_common.topics import Topics
from aiops_rca.testing import (
    CHAINS,
    SHOP_CALLS,
    SHOP_SERVICES,
    Pipeline,
    chain_calls,
    chain_services,
    fault_anomalies,
    load_topology,
    write_history,
)
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.functional

NOW = datetime.now(UTC).replace(microsecond=0)
ONSET = NOW - timedelta(minutes=5)

Platform = Pipeline[WorkerProcess]


@pytest.fixture
def platform(broker_url: str, topic_prefix: str, tmp_path: Path) -> Iterator[Platform]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    platform = Platform(broker_url, topic_prefix, data_dir, tmp_path, WorkerProcess.start, worker_env)
    services, calls = SHOP_SERVICES + chain_services(), SHOP_CALLS + chain_calls()
    asyncio.run(load_topology(platform.topology_url, services, calls, ONSET))
    try:
        yield platform
    finally:
        for worker in platform.started:
            worker.stop()


def anomaly(series: str, service: str, at: datetime) -> AnomalyRecord:
    return service_anomaly(series, service, at)


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
    asyncio.run(write_history(platform.tsdb_url, ONSET, NOW))
    correlation = platform.start_correlation()
    rca = platform.start_rca()

    async def run() -> tuple[IncidentRecord, RcaResult]:
        await correlation.until_ready()
        await rca.until_ready()
        await platform.publish_anomalies(fault_anomalies(ONSET))
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
        await platform.publish(Topics.FEEDBACK, [(incident.id.encode(), label.encode())])
        return await rca.eventually(kept, scaled(60), "the cause label in the feedback store")

    assert asyncio.run(confirm())


def test_tsdb_down_gives_a_degraded_result_from_what_is_left(platform: Platform) -> None:
    correlation = platform.start_correlation()
    rca = platform.start_rca(tsdb_url=f"prometheus://127.0.0.1:{free_port()}")  # nothing listens there

    async def run() -> tuple[IncidentRecord, RcaResult]:
        await correlation.until_ready()
        await rca.until_ready()
        await platform.publish_anomalies(fault_anomalies(ONSET))
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


def test_an_incident_held_for_its_debounce_when_the_worker_is_killed_is_analysed_after_restart(
    platform: Platform,
) -> None:
    # A debounce far longer than the test: the incident's revisions are taken and held, never analysed by this
    # worker. Incidents go straight onto their topic (no correlation worker to start: this test stays cheap).
    rca = platform.start_rca(rca_debounce_s=300, rca_debounce_max_s=300)
    revisions = [
        incident_revision("inc-held", r, services, ONSET)
        for r, services in ((1, ["payment"]), (2, ["payment", "checkout"]))
    ]

    async def held() -> float | None:
        async with httpx.AsyncClient(timeout=5.0) as client:
            text = (await client.get(rca.probe_url + "/metrics")).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "aiops_rca_held_incidents" and sample.value >= 1:
                    return sample.value
        return None

    async def first() -> None:
        await rca.until_ready()
        await platform.publish(Topics.INCIDENTS, [(i.id.encode(), i.encode()) for i in revisions])
        await rca.eventually(held, scaled(60), "the incident held by the RCA worker")
        assert await platform.results() == []

    asyncio.run(first())
    rca.kill()  # its records were not acknowledged: the restarted worker reads them again
    restarted = platform.start_rca()

    async def second() -> list[RcaResult]:
        await restarted.until_ready()

        async def some() -> list[RcaResult] | None:
            return (await platform.results()) or None

        return await restarted.eventually(some, scaled(60), "a result for the held incident")

    results = asyncio.run(second())
    # Both revisions came within the debounce: the newest is analysed, once.
    assert [(r.incident_id, r.incident_revision) for r in results] == [("inc-held", 2)]
