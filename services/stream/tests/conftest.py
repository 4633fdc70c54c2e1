"""Fixtures for the stream service's tests: the worker as a real subprocess, producing and reading topics."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiops_cli.testing import WorkerProcess, worker_env
from aiops_common.broker import Publisher, bootstrap_servers, free_port
from aiops_common.broker.publisher import Message
from aiops_common.schemas import FeatureBatch, MetricBatch, TopologyEdge
from aiops_common.testing.eventually import eventually
from aiops_common.topics import Topics, TopicSpec
from aiops_stream.series_clocks import SeriesClocks
from aiops_stream.settings import StreamSettings
from aiops_stream.window_processor import series_clocks, window_config

Rows = dict[tuple[str, int, int], dict[str, float]]
"""Feature rows by (series key, window start, window length)."""


StreamWorker = WorkerProcess
"""``python -m aiops_cli worker stream`` against the test broker."""


@pytest.fixture
def stream_worker(broker_url: str, topic_prefix: str, tmp_path: Path) -> Iterator[Callable[..., StreamWorker]]:
    """Start the stream worker with ``AIOPS_*`` settings and its probe server; every one started is stopped after.

    :meth:`TopicReader.until` waits for the worker's ``/ready`` before its budget starts.
    """
    started: list[StreamWorker] = []

    def start(**settings: Any) -> StreamWorker:
        env = worker_env(broker_url, topic_prefix, tmp_path / "data", **settings)
        worker = WorkerProcess.start("stream", env, tmp_path / f"stream-{len(started)}.log", http_port=free_port())
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


async def send(publisher: Publisher, spec: TopicSpec, value: bytes, partition: int = 0) -> None:
    await publisher.publish([Message(spec, value, key=str(partition).encode(), partition=partition)])


@dataclass
class TopicReader:
    """Reads every partition of a topic from the beginning, collecting decoded values."""

    broker_url: str
    name: str
    decode: Callable[[bytes], Any]
    values: list[Any] = field(default_factory=list)
    _consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers(self.broker_url), enable_auto_commit=False
        )
        await self._consumer.start()
        consumer = self._consumer

        async def partitions() -> set[int]:
            await consumer._client.force_metadata_update()  # metadata is lazy in aiokafka
            return consumer.partitions_for_topic(self.name) or set()

        found = await eventually(partitions, timeout=10, what=f"{self.name}'s partitions in the broker's metadata")
        tps = [TopicPartition(self.name, p) for p in sorted(found)]
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    async def poll(self) -> None:
        assert self._consumer is not None
        batches = await self._consumer.getmany(timeout_ms=200)
        for records in batches.values():
            self.values.extend(self.decode(r.value) for r in records)

    async def until(
        self, done: Callable[[list[Any]], bool], timeout_s: float, worker: StreamWorker | None = None
    ) -> None:
        """Poll until ``done(values)``, within ``timeout_s`` scaled by ``AIOPS_TEST_TIMEOUT_SCALE``.

        With a ``worker``, the budget starts once it holds its partitions (its ``/ready``),
        the wait ends at once if it exits, and a time-out shows its log.
        """
        if worker is not None:
            await worker.until_ready()
        if done(self.values):
            return

        async def holds() -> bool:
            await self.poll()
            assert done(self.values), f"condition not met by {len(self.values)} values"
            return True

        what = f"{self.name} to hold what the test expects"
        if worker is None:
            await eventually(holds, timeout=timeout_s, what=what, interval=0)
        else:
            await worker.eventually(holds, timeout_s, what)


@pytest.fixture
async def features(broker_url: str, topic_prefix: str, publisher: Publisher) -> AsyncIterator[TopicReader]:
    reader = TopicReader(broker_url, Topics.FEATURES.full_name(topic_prefix), FeatureBatch.decode)
    await reader.start()
    yield reader
    await reader.stop()


@pytest.fixture
async def edges(broker_url: str, topic_prefix: str, publisher: Publisher) -> AsyncIterator[TopicReader]:
    reader = TopicReader(broker_url, Topics.TOPOLOGY_EDGES.full_name(topic_prefix), TopologyEdge.decode)
    await reader.start()
    yield reader
    await reader.stop()


async def until_committed(broker_url: str, prefix: str, partition: int, minimum: int, worker: StreamWorker) -> None:
    """Wait until the stream worker's consumer group has committed ``minimum`` on a partition of metrics.raw."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers(broker_url), group_id=f"{prefix}aiops-stream", enable_auto_commit=False
    )
    await consumer.start()
    try:
        tp = TopicPartition(Topics.METRICS_RAW.full_name(prefix), partition)

        async def committed() -> int:
            offset = await consumer.committed(tp) or 0
            assert offset >= minimum, f"committed offset {offset}"
            return offset

        await worker.eventually(committed, 30, f"the stream group to commit offset {minimum} on {tp}")
    finally:
        await consumer.stop()


async def until_checkpointed(broker_url: str, prefix: str, partition: int, worker: StreamWorker) -> None:
    """Wait until the window aggregator's checkpoint of a partition is in its changelog: what a restart restores."""
    topic = f"{prefix}aiops-stream-window_aggregator-checkpoints-changelog"
    key = str(partition).encode()  # the main entry; the processors' own entries have a suffix
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers(broker_url), enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)

        async def written() -> bool:
            batch = await consumer.getmany(tp, timeout_ms=200)
            return any(record.key == key for records in batch.values() for record in records)

        await worker.eventually(written, 30, f"partition {partition}'s checkpoint in {topic}")
    finally:
        await consumer.stop()


def uninterrupted_rows(settings: dict[str, Any], stream: list[tuple[int, bytes]], idle_ms: int | None = None) -> Rows:
    """What a worker never interrupted emits for ``stream``, (partition, MetricBatch) in the order produced.

    The engine (checked against a per-sample reference in the unit tests) per partition;
    with ``idle_ms``, then an idle flush of every partition.
    """
    parsed = {k: tuple(json.loads(v)) if k == "stream_rollups" else v for k, v in settings.items()}
    stream_settings = StreamSettings(**parsed)
    config = window_config(stream_settings)
    engines: dict[int, SeriesClocks] = {}
    batches: list[FeatureBatch | None] = []
    for offset, (part, value) in enumerate(stream):
        batch = MetricBatch.decode(value)
        engine = engines.get(part)
        if engine is None:
            engine = engines[part] = series_clocks(stream_settings, config, "metrics", part)
        # Offsets only order a partition's messages here; any increasing number does.
        engine.add(offset, engine.series_ids(batch.series)[batch.sid], batch.ts_ms, batch.value)
        batches.append(engine.advance())
    if idle_ms is not None:
        batches.extend(engine.idle(idle_ms) for engine in engines.values())
    return feature_rows([b for b in batches if b is not None])


def feature_rows(batches: list[FeatureBatch]) -> Rows:
    """Rows by (series key, start, length); a row delivered again must be identical to the first delivery."""
    rows: Rows = {}
    for batch in batches:
        for row in batch.rows():
            values = dict(row.values)
            if row.key in rows:
                assert _same(rows[row.key], values), (row.key, rows[row.key], values)
            rows[row.key] = values
    return rows


def assert_rows_equal(got: Rows, want: Rows) -> None:
    """Every wanted row is there, every column equal (NaN matching NaN)."""
    for key, expected in want.items():
        assert key in got, key
        assert _same(got[key], expected), (key, got[key], expected)


def _same(a: dict[str, float], b: dict[str, float]) -> bool:
    return all(a[k] == b[k] or (a[k] != a[k] and b[k] != b[k]) for k in a)
