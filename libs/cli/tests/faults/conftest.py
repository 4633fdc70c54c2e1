"""Fixtures of the fault tests: the ingestion service, and correlation + RCA workers, as real worker processes."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from aiops_cli.testing import WorkerProcess, worker_env
from aiops_common.broker import free_port
from aiops_common.broker.reader import read_to_end
from aiops_common.schemas import MetricBatch
from aiops_common.topics import Topics
from aiops_rca.testing import CHAINS, chain_calls, chain_services, load_topology
from aiops_rca.testing import Pipeline as RcaPipeline

__all__ = [
    "CHAINS",
    "ONSET",
    "Ingestion",
    "MakePipeline",
    "Pipeline",
    "StartIngestion",
    "dropped",
    "metric_services",
    "stop_all",
]

ONSET = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
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

Pipeline = RcaPipeline[WorkerProcess]
MakePipeline = Callable[..., Pipeline]


@pytest.fixture
def make_pipeline(broker_url: str, tmp_path: Path) -> Iterator[MakePipeline]:
    """``make_pipeline(topology_url=None)``: a new topic prefix and data folder; the chains' topology is loaded into
    the folder's SQLite store (or the store ``topology_url`` names). Its workers are stopped after."""
    made: list[Pipeline] = []

    def make(topology_url: str | None = None) -> Pipeline:
        data_dir = tmp_path / f"data{len(made)}"
        data_dir.mkdir()
        pipeline = Pipeline(
            broker_url, f"t{uuid.uuid4().hex[:10]}.", data_dir, tmp_path, WorkerProcess.start, worker_env
        )
        made.append(pipeline)
        url = topology_url or pipeline.topology_url
        asyncio.run(load_topology(url, chain_services(), chain_calls(), ONSET))
        return pipeline

    yield make
    stop_all([worker for pipeline in made for worker in pipeline.started])


def stop_all(workers: list[WorkerProcess]) -> None:
    """Stop workers together: each is told at once (SIGTERM), then waited for (SIGKILL past its grace)."""
    for worker in workers:
        if worker.proc.poll() is None:
            worker.proc.terminate()
    for worker in workers:
        worker.stop()


def dropped(worker: WorkerProcess) -> dict[tuple[str, str], float]:
    """The worker's non-zero drop counters, by (agent, reason)."""
    text = httpx.get(worker.probe_url + "/metrics", timeout=10).text
    return {(agent, reason): float(n) for agent, reason, n in _DROPPED.findall(text) if float(n) > 0}
