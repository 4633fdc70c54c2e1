"""A whole platform (``aiops up``) started for a test on free ports, and the CLI run against it."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiops_cli.testing import PlatformProcess, WorkerExitedError
from aiops_common.broker import bootstrap_servers
from aiops_common.testing.eventually import EventuallyTimeoutError, eventually, scaled
from aiops_common.topics import TopicSpec


def aiops(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the ``aiops`` CLI with ``env``; its output as text (``timeout`` scaled by ``AIOPS_TEST_TIMEOUT_SCALE``)."""
    return subprocess.run(
        [sys.executable, "-m", "aiops_cli", *args], env=env, capture_output=True, text=True, timeout=scaled(timeout)
    )


Platform = PlatformProcess

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
        platform = PlatformProcess.start(tmp_path / "data", tmp_path / "up.log", *args, **extra_env)
        started.append(platform)
        try:
            asyncio.run(platform.until_ready())
        except (EventuallyTimeoutError, WorkerExitedError) as exc:
            pytest.fail(str(exc))
        return platform

    yield start
    for platform in started:
        platform.stop()


@pytest.fixture
def platform(start_platform: StartPlatform) -> Platform:
    return start_platform(AIOPS_HOST_METRICS_INTERVAL_S="1")
