"""Fixtures of the fault tests: the ingestion service as a real worker process on free loopback ports."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from aiops_cli.testing import WorkerProcess, worker_env
from aiops_common.broker import free_port
from aiops_common.broker.reader import read_to_end
from aiops_common.schemas import MetricBatch
from aiops_common.topics import Topics


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
