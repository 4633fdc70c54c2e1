"""SIGKILL the correlation and RCA workers mid-stream and restart them: against an uninterrupted run of the same
anomalies, the same incidents (deterministic ids, same members) and for each its newest revision analysed once,
with the same top cause; nothing lost from the topics or the document store."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import pytest
from aiops_cli.testing import WorkerProcess
from aiops_common.schemas import AnomalyRecord, IncidentRecord, RcaResult, rca_result_id
from aiops_common.testing.eventually import EventuallyTimeoutError, scaled
from aiops_common.testing.records import service_anomaly

from .conftest import CHAINS, ONSET, MakePipeline, Pipeline

pytestmark = pytest.mark.functional

# Three waves: each chain's incident opens on its store and grows up the chain, one service a wave.
WAVES: list[list[AnomalyRecord]] = [
    [service_anomaly("red.error_rate:value_10s", chain[-1 - w], ONSET + timedelta(seconds=15 * w)) for chain in CHAINS]
    for w in range(3)
]

Outcome = tuple[dict[str, IncidentRecord], list[RcaResult]]


async def settled(pipeline: Pipeline, rca: WorkerProcess, correlation: WorkerProcess) -> Outcome:
    """Every chain's incident with all three members, and a result for every incident's newest revision.

    On time-out, both workers' logs: a member missing is correlation's to explain, a result missing RCA's."""

    async def check() -> Outcome:
        incidents = {i.id: i for i in (await pipeline.incidents()).values() if i.merged_into is None}
        shapes = sorted((i.id, i.revision, len(i.members)) for i in incidents.values())
        assert len(incidents) == len(CHAINS) and all(len(i.members) == 3 for i in incidents.values()), shapes
        results = await pipeline.results()
        done = {(r.incident_id, r.incident_revision) for r in results}
        assert all((i.id, i.revision) in done for i in incidents.values()), (shapes, sorted(done))
        return incidents, results

    try:
        return await rca.eventually(check, scaled(150), "every incident grown and its newest revision analysed")
    except EventuallyTimeoutError as exc:
        raise EventuallyTimeoutError(f"{exc}\n-- correlation's log:\n{correlation.log()[-6000:]}") from None


async def stored(pipeline: Pipeline, worker: WorkerProcess, outcome: Outcome) -> None:
    """Every result published is in ``rca_results``, every incident in ``incidents`` at its newest revision."""
    incidents, results = outcome

    async def check() -> bool:
        rca_docs = await pipeline.documents("rca_results")
        missing = {r.id for r in results} - set(rca_docs)
        assert not missing, f"results published but not stored: {sorted(missing)}"
        docs = await pipeline.documents("incidents")
        behind = [i.id for i in incidents.values() if docs.get(i.id, {}).get("revision") != i.revision]
        assert not behind, f"incidents not stored at their newest revision: {behind}"
        return True

    await worker.eventually(check, scaled(90), "every incident and result in the document store")


def test_sigkill_mid_stream_gives_the_same_incidents_and_analyses(make_pipeline: MakePipeline) -> None:
    calm, killed = make_pipeline(), make_pipeline()
    calm_workers = (calm.start_correlation(), calm.start_rca())
    killed_workers = (killed.start_correlation(), killed.start_rca())

    async def uninterrupted() -> Outcome:
        for worker in calm_workers:
            await worker.until_ready()
        await calm.publish_anomalies(WAVES[0])

        async def opened() -> bool:
            return len(await calm.incidents()) == len(CHAINS)

        # An incident's id is its opening member's: the first wave opens them in both runs, as it is alone on
        # the topic. Sent with the others, a later wave's anomaly (another partition) could be taken first.
        await calm_workers[0].eventually(opened, scaled(90), "the first wave's incidents")
        for wave in WAVES[1:]:
            await calm.publish_anomalies(wave)
        outcome = await settled(calm, calm_workers[1], calm_workers[0])
        await stored(calm, calm_workers[1], outcome)
        return outcome

    async def first_wave() -> None:
        for worker in killed_workers:
            await worker.until_ready()
        await killed.publish_anomalies(WAVES[0])

        async def some_results() -> bool:
            return len(await killed.results()) >= 1

        await killed_workers[1].eventually(some_results, scaled(90), "a first result")

    want = asyncio.run(uninterrupted())
    asyncio.run(first_wave())
    # Mid-stream: results of the first wave are out, whatever was in flight (uncommitted offsets, unstored
    # documents, a correlator state not checkpointed) dies with the workers.
    for worker in killed_workers:
        worker.kill()

    async def rest() -> tuple[Outcome, WorkerProcess]:
        await killed.publish_anomalies(WAVES[1])  # while neither runs: it waits on the topic
        correlation, rca = killed.start_correlation(), killed.start_rca()
        await correlation.until_ready()
        await rca.until_ready()
        await killed.publish_anomalies(WAVES[2])
        outcome = await settled(killed, rca, correlation)
        await stored(killed, rca, outcome)
        return outcome, rca

    (got_incidents, got_results), restarted = asyncio.run(rest())
    want_incidents, want_results = want

    # Incident ids derive from the member that opened them: the same ids, the same members, none extra.
    assert set(got_incidents) == set(want_incidents)
    for incident_id, incident in got_incidents.items():
        members = sorted(m.fingerprint for m in incident.members)
        assert members == sorted(m.fingerprint for m in want_incidents[incident_id].members), incident_id
    # Revision numbers may differ between the runs (a restart may publish a revision again, batches differ),
    # so results, whose id is (incident, revision), compare by incident: the newest revision's has the same
    # top cause. Within a run, no revision is analysed twice: a duplicate would be a second result, same id.
    for run_results in (got_results, want_results):
        counts = Counter((r.incident_id, r.incident_revision) for r in run_results)
        assert all(n == 1 for n in counts.values()), sorted(k for k, n in counts.items() if n > 1)
        assert all(r.id == rca_result_id(r.incident_id, r.incident_revision) for r in run_results)

    def top_causes(incidents: dict[str, IncidentRecord], results: list[RcaResult]) -> dict[str, str | None]:
        newest = {(r.incident_id, r.incident_revision): r for r in results}
        tops = {i.id: newest[(i.id, i.revision)].top for i in incidents.values()}
        return {incident_id: top.service if top else None for incident_id, top in tops.items()}

    assert top_causes(got_incidents, got_results) == top_causes(want_incidents, want_results)
    restarted.check_alive()
