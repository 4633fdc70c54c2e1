"""The document store locked by another writer while incidents are built and analysed: correlation and RCA go
on publishing, their writes wait (and, past SQLite's busy timeout, are retried), and once the store is free again
every incident and result published is stored, with nothing counted as dropped."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import pytest
from aiops_common.schemas import IncidentRecord, RcaResult, rca_result_id
from aiops_common.testing.eventually import scaled
from aiops_common.testing.records import service_anomaly

from .conftest import CHAINS, ONSET, MakePipeline, dropped

pytestmark = pytest.mark.functional


@pytest.mark.parametrize(
    "past_busy_timeout",
    [
        False,
        # Held past SQLite's 30 s busy timeout, so writes fail and the agents' retries are what carry them.
        pytest.param(True, marks=pytest.mark.slow),
    ],
    ids=["short", "past-busy-timeout"],
)
def test_writes_wait_for_a_locked_document_store_and_catch_up(
    make_pipeline: MakePipeline, past_busy_timeout: bool
) -> None:
    pipeline = make_pipeline()
    correlation = pipeline.start_correlation()
    rca = pipeline.start_rca()
    anomalies = [service_anomaly("red.error_rate:value_10s", chain[-1], ONSET) for chain in CHAINS]

    async def ready() -> None:
        await correlation.until_ready()
        await rca.until_ready()  # both have opened (and created) the document store

    asyncio.run(ready())
    # The fault: another process holds the store's write lock; every writer waits on it, readers do not (WAL).
    holder = sqlite3.connect(pipeline.documents_path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:

        async def published() -> tuple[dict[str, IncidentRecord], list[RcaResult]]:
            await pipeline.publish_anomalies(anomalies)

            async def analysed() -> tuple[dict[str, IncidentRecord], list[RcaResult]]:
                incidents = await pipeline.incidents()
                results = await pipeline.results()
                assert len(incidents) == len(CHAINS), sorted(incidents)
                done = {(r.incident_id, r.incident_revision) for r in results}
                assert all((i.id, i.revision) in done for i in incidents.values()), sorted(done)
                return incidents, results

            # The pipeline goes on without its store: the incidents and their analyses are on the topics.
            return await rca.eventually(analysed, scaled(120), "an RCA result for every incident on the topics")

        incidents, results = asyncio.run(published())
        assert asyncio.run(pipeline.documents("rca_results")) == {}, "a write got past the lock"
        if past_busy_timeout:

            async def retried() -> bool:
                return "document store unavailable; retrying" in rca.log()

            asyncio.run(rca.eventually(retried, scaled(120), "a write that failed on the lock, retried"))
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    async def stored() -> dict[str, dict[str, Any]]:
        docs = await pipeline.documents("incidents")
        rca_docs = await pipeline.documents("rca_results")
        assert set(rca_docs) == {r.id for r in results}, (sorted(rca_docs), sorted(r.id for r in results))
        assert set(docs) == set(incidents), (sorted(docs), sorted(incidents))
        for incident in incidents.values():
            assert docs[incident.id]["revision"] == incident.revision, (incident.id, docs[incident.id]["revision"])
        return docs

    asyncio.run(rca.eventually(stored, scaled(120), "every incident and result in the document store"))
    # Nothing was given up on: the lock lasted less than the agents' retry budgets.
    assert dropped(correlation) == {}
    assert dropped(rca) == {}

    async def summarised() -> bool:
        docs = await pipeline.documents("incidents")
        bare = [
            i for i, doc in docs.items() if (doc.get("rca") or {}).get("id") != rca_result_id(i, incidents[i].revision)
        ]
        assert not bare, f"incidents stored without their analysis: {bare}"
        return True

    # RCA attaches a result to its incident right after storing the result itself (waited on above). Both it and
    # the incident archive queue on the lock; each writes against the version it read, so neither drops the
    # other's fields (the archive once overwrote ``rca`` when RCA's write landed between its read and write).
    asyncio.run(rca.eventually(summarised, scaled(60), "each incident document carrying its analysis"))
