"""Fixtures of the fault tests: the ingestion service, and correlation + RCA workers, as real worker processes."""

from __future__ import annotations

import asyncio
import itertools
import re
import uuid
from collections.abc import Callable, Iterator
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
from aiops_common.schemas import AnomalyRecord, IncidentRecord, MetricBatch, RcaResult
from aiops_common.topics import Topics, TopicSpec
from aiops_common.topology import Dependency, Service, open_topology_store

ONSET = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
# Three chains of their own: three incidents that never group with one another.
CHAINS = [(f"web{i}", f"api{i}", f"store{i}") for i in range(3)]
_DROPPED = re.compile(r'^aiops_agent_dropped_records_total\{agent="([^"]+)",reason="([^"]+)"\} (\S+)$', re.M)


# -- ingestion -----------------------------------------------------------------------------------------


@dataclass
class Ingestion:
    """``aiops worker ingestion`` with its HTTP and gRPC receivers."""

    worker: WorkerProcess
    http_url: str
    grpc_address: str

    async def until_ready(self, timeout_s: float = 120.0) -> None:
        """Until ``/ready`` answers 200: the receivers listen and the broker answers."""

        async def ready() -> bool:
            try:
                async with httpx.AsyncClient(timeout=5.0) as client:
                    return (await client.get(self.http_url + "/ready")).status_code == 200
            except httpx.TransportError:
                return False  # not listening yet

        await self.worker.eventually(ready, timeout_s, "the ingestion service's /ready")


StartIngestion = Callable[..., Ingestion]


@pytest.fixture
def start_ingestion(tmp_path: Path) -> Iterator[StartIngestion]:
    """``start_ingestion(broker_url, prefix, **settings)``: a new ingestion process (not yet ready); stopped after."""
    started: list[Ingestion] = []

    def start(broker_url: str, prefix: str, **settings: object) -> Ingestion:
        http_port, grpc_port = free_port(), free_port()
        env = worker_env(
            broker_url,
            prefix,
            tmp_path / "data",
            ingest_http_port=http_port,
            ingest_grpc_port=grpc_port,
            **settings,
        )
        worker = WorkerProcess.start("ingestion", env, tmp_path / f"ingestion-{len(started)}.log")
        service = Ingestion(worker, f"http://127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}")
        started.append(service)
        return service

    yield start
    for service in started:
        service.worker.stop()


async def metric_services(broker_url: str, prefix: str) -> list[str]:
    """The ``service`` label of every sample on ``metrics.raw`` so far, repeats kept."""
    found: list[str] = []

    def take(value: bytes) -> None:
        found.extend(meta.labels.get("service", "") for meta, _ts, _v in MetricBatch.decode(value).samples())

    await read_to_end(broker_url, Topics.METRICS_RAW, prefix, take, timeout_s=60.0)
    return found


# -- correlation and RCA -------------------------------------------------------------------------------


@dataclass
class Pipeline:
    """Correlation and RCA workers on the session broker, under one topic prefix and data folder."""

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
        log = self.tmp / f"{self.data_dir.name}-{service}-{len(self.started)}.log"
        worker = WorkerProcess.start(service, env, log, free_port())
        self.started.append(worker)
        return worker

    def start_correlation(self) -> WorkerProcess:
        return self.start("correlation", correlate_tick_s=1, correlate_checkpoint_interval_s=1)

    def start_rca(self) -> WorkerProcess:
        return self.start("rca", rca_debounce_s=0.5)

    async def publish_anomalies(self, anomalies: list[AnomalyRecord]) -> None:
        publisher = Publisher(self.broker_url, self.prefix)
        try:
            await publisher.publish(
                [Message(Topics.ANOMALIES, a.encode(), key=a.series_key.encode()) for a in anomalies]
            )
        finally:
            await publisher.stop()

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


MakePipeline = Callable[[], Pipeline]


@pytest.fixture
def make_pipeline(broker_url: str, tmp_path: Path) -> Iterator[MakePipeline]:
    """``make_pipeline()``: a new topic prefix and data folder with the chains' topology; workers stopped after."""
    made: list[Pipeline] = []

    def make() -> Pipeline:
        data_dir = tmp_path / f"data{len(made)}"
        data_dir.mkdir()
        asyncio.run(_load_topology(f"sqlite:///{data_dir / 'topology.sqlite'}"))
        pipeline = Pipeline(broker_url, f"t{uuid.uuid4().hex[:10]}.", data_dir, tmp_path)
        made.append(pipeline)
        return pipeline

    yield make
    for pipeline in made:
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
    return {(agent, reason): float(n) for agent, reason, n in _DROPPED.findall(text) if float(n) > 0}
