"""Fixtures for the ingestion service's tests: the service itself, run as a real subprocess."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from aiops_common.broker import free_port
from aiops_common.testing.eventually import EventuallyTimeoutError, eventually


@dataclass
class IngestionProcess:
    """``aiops worker ingestion`` running against the test broker, on free loopback ports."""

    broker_url: str
    prefix: str
    http_port: int
    grpc_port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Until ``/ready`` answers 200 (``timeout_s`` scaled by ``AIOPS_TEST_TIMEOUT_SCALE``); at once if it exits."""

        async def ready() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ingestion exited with {self.proc.returncode}:\n{self.log()}")
            try:
                async with httpx.AsyncClient(timeout=5.0) as client:
                    return (await client.get(self.http_url + "/ready")).status_code == 200
            except httpx.HTTPError:
                return False  # not listening yet

        try:
            asyncio.run(eventually(ready, timeout=timeout_s, what="the ingestion service's /ready"))
        except EventuallyTimeoutError as exc:
            raise EventuallyTimeoutError(f"{exc}\n{self.log()}") from None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_ingestion(broker_url: str, prefix: str, tmp: Path, **env: str) -> IngestionProcess:
    http_port, grpc_port = free_port(), free_port()
    log_path = tmp / f"ingestion-{http_port}.log"
    environment = {
        **os.environ,
        "AIOPS_BROKER_URL": broker_url,
        "AIOPS_TOPIC_PREFIX": prefix,
        "AIOPS_DATA_DIR": str(tmp / "data"),
        "AIOPS_INGEST_HTTP_PORT": str(http_port),
        "AIOPS_INGEST_GRPC_PORT": str(grpc_port),
        "AIOPS_LOG_LEVEL": "WARNING",
        **env,
    }
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "aiops_cli", "worker", "ingestion"], env=environment, stdout=out, stderr=out
        )
    service = IngestionProcess(broker_url, prefix, http_port, grpc_port, proc, log_path)
    try:
        service.wait_ready()
    except BaseException:
        service.stop()
        raise
    return service


@pytest.fixture
def ingestion_factory(tmp_path: Path) -> Iterator[Callable[..., IngestionProcess]]:
    """Start extra ingestion services (own broker, own settings); stopped after the test."""
    started: list[IngestionProcess] = []

    def start(broker_url: str, prefix: str, **env: str) -> IngestionProcess:
        service = start_ingestion(broker_url, prefix, tmp_path, **env)
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


@pytest.fixture(scope="module")
def ingestion(broker_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[IngestionProcess]:
    """One ingestion service per test module, on its own topic prefix."""
    tmp = tmp_path_factory.mktemp("ingestion")
    prefix = f"m{os.urandom(5).hex()}."
    service = start_ingestion(broker_url, prefix, tmp)
    yield service
    service.stop()
