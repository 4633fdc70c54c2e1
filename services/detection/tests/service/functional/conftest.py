"""Fixtures for the detection service's functional tests: the worker as a subprocess, feature producer, readers."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import pytest
from aiops_cli.testing import WorkerProcess, worker_env
from aiops_common.broker import Publisher
from aiops_common.broker.publisher import Message
from aiops_common.broker.reader import read_values
from aiops_common.schemas import SeriesMeta
from aiops_common.schemas.metrics import shard_of
from aiops_common.topics import Topics, TopicSpec

from ..conftest import SERVICE_SETTINGS, window_batch

V = TypeVar("V")


class DetectionWorker(WorkerProcess):
    """``python -m aiops_cli worker detection`` against the test broker."""

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            pytest.fail(f"detection worker exited with {self.proc.returncode}\n{self.log()[-6000:]}")

    async def until_logged(self, text: str, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while text not in self.log():
            self.check_alive()
            if time.monotonic() > deadline:
                pytest.fail(f"worker did not log {text!r} in {timeout_s}s\n{self.log()[-6000:]}")
            await asyncio.sleep(0.1)


@pytest.fixture
def service_env(broker_url: str, topic_prefix: str, tmp_path: Path) -> dict[str, str]:
    """The environment of the worker and of the CLI commands run beside it."""
    return worker_env(
        broker_url,
        topic_prefix,
        tmp_path / "data",
        detect_model_poll_s=0.5,
        detect_static_thresholds=json.dumps({"disk_used_percent": [None, 95.0]}),
        **SERVICE_SETTINGS,
    )


@pytest.fixture
def detection_worker(service_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[[], DetectionWorker]]:
    """Start the detection worker; every one started is stopped after the test."""
    started: list[DetectionWorker] = []

    def start() -> DetectionWorker:
        worker = DetectionWorker.start("detection", service_env, tmp_path / f"detection-{len(started)}.log")
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def aiops(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run an ``aiops`` command; fail the test with its output if it fails."""
    done = subprocess.run(
        [sys.executable, "-m", "aiops_cli", *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"aiops {' '.join(args)} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


async def send_windows(
    publisher: Publisher, series: Sequence[SeriesMeta], first: int, columns: Sequence[dict[str, Sequence[float]]]
) -> None:
    """Windows ``first...`` of every series as the stream service sends them: one batch per partition."""
    partitions: dict[int, list[int]] = {}
    for i, meta in enumerate(series):
        partitions.setdefault(shard_of(meta.key, Topics.FEATURES.partitions), []).append(i)
    messages = []
    for part, members in sorted(partitions.items()):
        batch = window_batch([series[i] for i in members], first, [columns[i] for i in members], f"w{first}#{part}")
        messages.append(Message(Topics.FEATURES, batch.encode(), key=str(part).encode(), partition=part))
    await publisher.publish(messages)


async def read_until(
    broker_url: str,
    prefix: str,
    spec: TopicSpec,
    decode: Callable[[bytes], V],
    done: Callable[[list[V]], bool],
    worker: DetectionWorker,
    timeout_s: float = 60.0,
) -> list[V]:
    """Every record of a topic once ``done`` holds for them; fails with the worker's log after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        worker.check_alive()
        raw = await read_values(
            broker_url, spec, prefix, until=lambda got: done([decode(v) for v in got]), timeout_s=2.0
        )
        values = [decode(v) for v in raw]
        if done(values):
            return values
        if time.monotonic() > deadline:
            log = worker.log()[-6000:]
            pytest.fail(f"{spec.name}: condition not met in {timeout_s}s ({len(values)} records)\n{log}")
