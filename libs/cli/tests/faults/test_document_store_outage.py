"""The document store locked by another writer while incidents are built and analysed: correlation and RCA go
on publishing, their writes wait (and, past SQLite's busy timeout, are retried), and once the store is free again
every incident and result published is stored, with nothing counted as dropped."""

from __future__ import annotations

import asyncio
import itertools
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiops_cli.testing import WorkerProcess, worker_env
from aiops_common.broker import Publisher, free_port
from aiops_common.broker.publisher import Message
from aiops_common.broker.reader import read_to_end
from aiops_common.documents import open_document_store
from aiops_common.schemas import IncidentRecord, RcaResult, rca_result_id
from aiops_common.testing.eventually import EventuallyTimeoutError, scaled
from aiops_common.testing.records import service_anomaly
from aiops_common.topics import Topics, TopicSpec
from aiops_common.topology import Dependency, Service, open_topology_store

pytestmark = pytest.mark.functional

ONSET = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
# Three chains of their own: three incidents that never group with one another.
CHAINS = [(f"web{i}", f"api{i}", f"store{i}") for i in range(3)]
DROPPED = re.compile(r'^aiops_agent_dropped_records_total\{agent="([^"]+)",reason="([^"]+)"\} (\S+)$', re.M)


@dataclass
class Pipeline:
    """A correlation and an RCA worker on the session broker, under one topic prefix and data folder."""

    broker_url: str
    prefix: str
    data_dir: Path
    tmp: Path
    started: list[WorkerProcess] = field(default_factory=list)

    @property
    def documents_path(self) -> Path:
        return self.data_dir / "documents.sqlite"

    def start(self, service: str, **settings: object) -> WorkerProcess:
        env = worker_env(self.broker_url, self.prefix, self.data_dir, **settings)
        worker = WorkerProcess.start(service, env, self.tmp / f"{service}-{len(self.started)}.log", free_port())
        self.started.append(worker)
        return worker

    async def read(self, spec: TopicSpec) -> list[bytes]:
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
        store = open_document_store(f"sqlite:///{self.documents_path}")
        try:
            page = await store.query(collection, limit=100)
            return {doc.id: doc.body for doc in page.documents}
        finally:
            await store.close()


@pytest.fixture
def pipeline(broker_url: str, topic_prefix: str, tmp_path: Path) -> Iterator[Pipeline]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    asyncio.run(_load_topology(f"sqlite:///{data_dir / 'topology.sqlite'}"))
    pipeline = Pipeline(broker_url, topic_prefix, data_dir, tmp_path)
    try:
        yield pipeline
    finally:
        for worker in pipeline.started:
            worker.stop()


async def _load_topology(url: str) -> None:
    store = open_topology_store(url)
    try:
        await store.upsert_services(Service(name) for chain in CHAINS for name in chain)
        calls = [(a, b) for chain in CHAINS for a, b in itertools.pairwise(chain)]
        await store.upsert_dependencies(
            Dependency(a, b, frozenset({"file"}), ONSET - timedelta(days=1), ONSET) for a, b in calls
        )
    finally:
        await store.close()


def dropped(worker: WorkerProcess) -> dict[tuple[str, str], float]:
    """The worker's non-zero drop counters, by (agent, reason)."""
    text = httpx.get(worker.probe_url + "/metrics", timeout=10).text
    return {(agent, reason): float(n) for agent, reason, n in DROPPED.findall(text) if float(n) > 0}


@pytest.mark.parametrize(
    "past_busy_timeout",
    [
        False,
        # Held past SQLite's 30 s busy timeout, so writes fail and the agents' retries are what carry them.
        pytest.param(True, marks=pytest.mark.slow),
    ],
    ids=["short", "past-busy-timeout"],
)
def test_writes_wait_for_a_locked_document_store_and_catch_up(pipeline: Pipeline, past_busy_timeout: bool) -> None:
    correlation = pipeline.start("correlation", correlate_tick_s=1, correlate_checkpoint_interval_s=1)
    rca = pipeline.start("rca", rca_debounce_s=0.5)
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
            publisher = Publisher(pipeline.broker_url, pipeline.prefix)
            try:
                await publisher.publish(
                    [Message(Topics.ANOMALIES, a.encode(), key=a.series_key.encode()) for a in anomalies]
                )
            finally:
                await publisher.stop()

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

    try:
        # Short: RCA attaches a result to its incident right after storing the result itself (waited on above).
        asyncio.run(rca.eventually(summarised, scaled(15), "each incident document carrying its analysis"))
    except EventuallyTimeoutError as exc:
        # A race, so not a strict xfail: the incident archive reads the stored incident, then writes it back
        # whole without a version check (aiops_correlation.agents.incident_archive.archive_bodies); when both
        # writers queue on the lock and RCA's attach lands between that read and that write, the archive's
        # write drops the ``rca`` field, and RCA, having analysed the revision, never attaches it again.
        pytest.xfail(f"known bug: the incident archive overwrites RCA's summary ({exc})")
