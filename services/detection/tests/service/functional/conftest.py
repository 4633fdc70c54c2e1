"""Fixtures for the detection service's functional tests: the worker as a subprocess, feature producer, readers."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiops_cli.testing import WorkerProcess, worker_env
from aiops_common.broker import Publisher
from aiops_common.broker.addresses import bootstrap_servers, free_port
from aiops_common.broker.reader import read_values
from aiops_common.partition_replay import unpack
from aiops_common.schemas import SeriesMeta
from aiops_common.schemas.metrics import shard_of
from aiops_common.testing.eventually import scaled
from aiops_common.topics import Topics, TopicSpec
from aiops_detection.testing import feature_messages
from prometheus_client.parser import text_string_to_metric_families

from ..conftest import SERVICE_SETTINGS

V = TypeVar("V")

# Budgets are ceilings, not waits: a passing test takes what the work takes. They are wide because
# the work itself (every tier learning hundreds of windows) slows with the machine's load, and every
# budget is multiplied by AIOPS_TEST_TIMEOUT_SCALE.
STARTUP_S = 180.0
"""Budget for a worker to take its partitions (imports, group join, a dead member's session to expire)."""
STATE_S = 180.0
"""Budget for state to follow input once the worker holds its partitions."""
TEST_S = scaled(900.0)
"""pytest-timeout for a whole worker test: above the sum of its budgets."""


class DetectionWorker(WorkerProcess):
    """``python -m aiops_cli worker detection`` against the test broker, started with its probe port."""

    async def metric(self, name: str, **labels: str) -> float | None:
        """One sample of the worker's ``/metrics``, or None while it is absent."""
        self.check_alive()
        try:
            async with httpx.AsyncClient(timeout=5.0) as client:
                response = await client.get(f"{self.probe_url}/metrics")
        except httpx.TransportError:
            return None
        if response.status_code != 200:
            return None
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    return float(sample.value)
        return None


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
def detection_worker(service_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[[], Awaitable[DetectionWorker]]]:
    """Start the detection worker and wait until it holds its partitions; every one started is stopped after."""
    started: list[DetectionWorker] = []

    async def start() -> DetectionWorker:
        log = tmp_path / f"detection-{len(started)}.log"
        worker = DetectionWorker.start("detection", service_env, log, http_port=free_port())
        started.append(worker)
        await worker.until_ready(STARTUP_S)
        return worker

    yield start
    for worker in started:
        worker.stop()


def aiops(env: dict[str, str], *args: str, status: int = 0) -> subprocess.CompletedProcess[str]:
    """Run an ``aiops`` command; fail the test with its output unless it exits with ``status``."""
    done = subprocess.run(
        [sys.executable, "-m", "aiops_cli", *args], env=env, capture_output=True, text=True, timeout=scaled(600)
    )
    assert done.returncode == status, f"aiops {' '.join(args)} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


async def send_windows(
    publisher: Publisher, series: Sequence[SeriesMeta], first: int, columns: Sequence[dict[str, Sequence[float]]]
) -> None:
    """Windows ``first...`` of every series as the stream service sends them: one batch per partition."""
    await publisher.publish(feature_messages(series, first, columns))


async def read_until(
    broker_url: str,
    prefix: str,
    spec: TopicSpec,
    decode: Callable[[bytes], V],
    done: Callable[[list[V]], bool],
    worker: DetectionWorker,
    timeout_s: float = STATE_S,
) -> list[V]:
    """Every record of a topic once ``done`` holds for them (the topic's contents are the state waited on)."""

    async def contents() -> list[V] | None:
        raw = await read_values(
            broker_url, spec, prefix, until=lambda got: done([decode(v) for v in got]), timeout_s=2.0
        )
        values = [decode(v) for v in raw]
        assert done(values), f"{len(values)} records, condition not met"
        return values

    return await worker.eventually(contents, timeout_s, f"{spec.name} to hold what the test expects")


async def _topic_end_offsets(consumer: AIOKafkaConsumer, topic: str) -> dict[TopicPartition, int]:
    await consumer._client.force_metadata_update()  # metadata is lazy in aiokafka
    tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
    return {tp: int(offset) for tp, offset in (await consumer.end_offsets(tps)).items()} if tps else {}


async def read_table(broker_url: str, topic: str) -> dict[bytes, bytes | None]:
    """The latest value of every key of a changelog topic, read to its end as of the call (None: deleted)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers(broker_url), enable_auto_commit=False)
    await consumer.start()
    latest: dict[bytes, bytes | None] = {}
    try:
        ends = await _topic_end_offsets(consumer, topic)
        todo = [tp for tp, end in ends.items() if end > 0]
        if not todo:
            return latest
        consumer.assign(todo)
        await consumer.seek_to_beginning(*todo)
        deadline = time.monotonic() + scaled(30.0)
        while todo and time.monotonic() < deadline:
            for msgs in (await consumer.getmany(*todo, timeout_ms=200)).values():
                for message in msgs:
                    if message.key is not None:
                        latest[message.key] = message.value
            todo = [tp for tp in todo if await consumer.position(tp) < ends[tp]]
        return latest
    finally:
        await consumer.stop()


@dataclass(frozen=True)
class Checkpoint:
    """The anomaly detector's checkpoint as its changelog holds it: per partition, the input covered and its series."""

    covered: dict[int, int]
    series: dict[int, list[str]]
    states: set[str]

    def holds(self, meta: SeriesMeta) -> bool:
        """Whether a series' state is checkpointed (named by its partition's marker, its entry present)."""
        part = shard_of(meta.key, Topics.FEATURES.partitions)
        return any(meta.key in sid for sid in self.series.get(part, [])) and any(meta.key in s for s in self.states)


async def read_checkpoint(broker_url: str, prefix: str) -> Checkpoint:
    app_id = f"{prefix}aiops-detection".replace("/", "-")  # as aiops_common.faust_app names the app
    table = await read_table(broker_url, f"{app_id}-anomaly_detector-state-changelog")
    covered: dict[int, int] = {}
    series: dict[int, list[str]] = {}
    states: set[str] = set()
    for key, value in table.items():
        if key.startswith(b"p/") and value is not None:
            marker = unpack(value)
            covered[int(key[2:])] = int(marker["offset"])
            series[int(key[2:])] = [str(s) for s in marker["series"]]
        elif key.startswith(b"s/") and value is not None:
            states.add(key[2:].decode())
    return Checkpoint(covered, series, states)


async def features_sent(broker_url: str, prefix: str) -> dict[int, int]:
    """The last offset of every ``features`` partition that holds a message."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers(broker_url), enable_auto_commit=False)
    await consumer.start()
    try:
        ends = await _topic_end_offsets(consumer, Topics.FEATURES.full_name(prefix))
    finally:
        await consumer.stop()
    return {tp.partition: end - 1 for tp, end in ends.items() if end > 0}


async def until_checkpointed(
    broker_url: str,
    prefix: str,
    worker: DetectionWorker,
    holds: Callable[[Checkpoint], bool] = lambda _: True,
    timeout_s: float = STATE_S,
) -> Checkpoint:
    """Wait until the checkpoint covers every ``features`` message sent so far and ``holds``; safe to SIGKILL then."""
    sent = await features_sent(broker_url, prefix)

    async def written() -> Checkpoint | None:
        checkpoint = await read_checkpoint(broker_url, prefix)
        behind = {
            p: (checkpoint.covered.get(p), last) for p, last in sent.items() if checkpoint.covered.get(p, -1) < last
        }
        assert not behind, f"partitions whose checkpoint lags the input (covered, sent): {behind}"
        assert holds(checkpoint), f"checkpoint covers the input but does not hold what is expected: {checkpoint}"
        return checkpoint

    return await worker.eventually(written, timeout_s, "the anomaly detector's checkpoint in its changelog")
