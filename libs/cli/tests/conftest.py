"""A whole platform (``aiops up``) started for a test on free ports, and the CLI run against it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiops_common.broker import bootstrap_servers, free_port
from aiops_common.testing.eventually import EventuallyTimeoutError, eventually, scaled
from aiops_common.topics import TopicSpec


def aiops(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the ``aiops`` CLI with ``env``; its output as text (``timeout`` scaled by ``AIOPS_TEST_TIMEOUT_SCALE``)."""
    return subprocess.run(
        [sys.executable, "-m", "aiops_cli", *args], env=env, capture_output=True, text=True, timeout=scaled(timeout)
    )


@dataclass
class Platform:
    proc: subprocess.Popen[bytes]
    env: dict[str, str]
    http_url: str
    log: Path


StartPlatform = Callable[..., Platform]


def until_caught_up(platform: Platform, *topics: TopicSpec, timeout_s: float = 120.0) -> None:
    """Wait until ``aiops up``'s consumer group has committed every record of ``topics``, on every partition."""
    state = json.loads((Path(platform.env["AIOPS_DATA_DIR"]) / "state.json").read_text())
    prefix = state["topic_prefix"]

    async def caught_up() -> bool:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers(state["broker_url"]),
            group_id=f"{prefix}aiops-platform",  # the app `aiops up` runs every agent in
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            behind: dict[str, int] = {}
            for spec in topics:
                tps = [TopicPartition(spec.full_name(prefix), p) for p in range(spec.partitions)]
                for tp, end in (await consumer.end_offsets(tps)).items():
                    committed = await consumer.committed(tp) or 0
                    if committed < end:
                        behind[f"{tp.topic}[{tp.partition}]"] = end - committed
        finally:
            await consumer.stop()
        assert not behind, f"records not committed yet: {behind}"
        return True

    names = ", ".join(spec.name for spec in topics)
    asyncio.run(eventually(caught_up, timeout=timeout_s, what=f"aiops up to commit all of {names}", interval=0.5))


@pytest.fixture
def start_platform(tmp_path: Path) -> Iterator[StartPlatform]:
    """``start_platform(*up_args, **env)``: ``aiops up`` on free ports, ready; killed after the test if still up."""
    started: list[Platform] = []

    def start(*args: str, **extra_env: str) -> Platform:
        http_port = free_port()
        env = {
            **os.environ,
            "AIOPS_DATA_DIR": str(tmp_path / "data"),
            "AIOPS_INGEST_HTTP_PORT": str(http_port),
            "AIOPS_INGEST_GRPC_PORT": str(free_port()),
            "AIOPS_GATEWAY_PORT": str(free_port()),
            "AIOPS_LOG_LEVEL": "WARNING",
            **extra_env,
        }
        env.pop("AIOPS_BROKER_URL", None)
        log = tmp_path / "up.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "aiops_cli", "up", *args], env=env, stdout=out, stderr=out)
        platform = Platform(proc, env, f"http://127.0.0.1:{http_port}", log)
        started.append(platform)

        async def answers_200(url: str) -> bool:
            if proc.poll() is not None:  # not an AssertionError: the wait ends at once
                raise RuntimeError(f"aiops up exited with {proc.returncode}: " + log.read_text()[-3000:])
            try:
                async with httpx.AsyncClient(timeout=5.0) as client:
                    return (await client.get(url)).status_code == 200
            except httpx.HTTPError:
                return False  # not listening yet

        async def ready() -> bool:
            # Ingestion answers, and the workers hold their partitions: a test's budgets measure the work.
            if not await answers_200(platform.http_url + "/ready"):
                return False
            state = json.loads((Path(env["AIOPS_DATA_DIR"]) / "state.json").read_text())  # written before ingestion
            return await answers_200(state["probe_url"] + "/ready")

        try:
            asyncio.run(eventually(ready, timeout=120, what="aiops up's ingestion /ready and worker /ready"))
        except EventuallyTimeoutError as exc:
            pytest.fail(f"{exc}\n" + log.read_text()[-3000:])
        return platform

    yield start
    for platform in started:
        if platform.proc.poll() is None:
            # SIGTERM stops servers, agents and the embedded broker (its own session: a SIGKILL here would orphan it).
            platform.proc.terminate()
            try:
                platform.proc.wait(30)
            except subprocess.TimeoutExpired:
                platform.proc.kill()
                platform.proc.wait()


@pytest.fixture
def platform(start_platform: StartPlatform) -> Platform:
    return start_platform(AIOPS_HOST_METRICS_INTERVAL_S="1")
