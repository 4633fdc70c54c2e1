"""The raw TSDB writer: every sample of many messages stored, each message acknowledged only once it is written."""

from __future__ import annotations

import math
import sqlite3
import struct
from pathlib import Path

import numpy as np
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiops_common.broker import Publisher, bootstrap_servers
from aiops_common.broker.publisher import Message
from aiops_common.schemas import MetricBatchBuilder, MetricKind
from aiops_common.topics import Topics
from aiops_common.tsdb.samples import STALE_NAN_BITS

from ..conftest import StreamWorker, until_committed

pytestmark = pytest.mark.functional

STALE = struct.unpack("<d", struct.pack("<Q", STALE_NAN_BITS))[0]
T0 = 1_700_000_040_000
NAME = "tsdb_writer_test"
SETTINGS = {"stream_window_s": 10, "stream_rollups": "[60]"}

Stored = dict[tuple[str, int], float | None]
"""(series key, timestamp) -> the stored value, None for a stale marker."""


def make_messages(partition: int, count: int, first: int = 0) -> tuple[list[bytes], Stored]:
    """``count`` messages of 30 series of one partition, one sample each per second, a few stale and NaN.

    Also what the TSDB must hold for them: a stale marker as NULL, no NaN, the last of a duplicate.
    """
    rng = np.random.default_rng(partition * 1_000 + first)
    messages: list[bytes] = []
    want: Stored = {}
    for i in range(first, first + count):
        builder = MetricBatchBuilder()
        ts = T0 + 1_000 * i
        for s in range(30):
            value = float(np.round(rng.normal(50, 10), 3))
            if (i + s) % 17 == 0:
                value = STALE
            elif (i + s) % 13 == 0:
                value = math.nan
            builder.add(NAME, {"p": str(partition), "s": str(s)}, ts, value, MetricKind.GAUGE)
        builder.add(NAME, {"p": str(partition), "s": "0"}, ts, 7.0, MetricKind.GAUGE)  # a duplicate: it wins
        batch = builder.build()
        for meta, t, v in batch.samples():
            if np.float64(v).view(np.uint64) == STALE_NAN_BITS:
                want[(meta.key, t)] = None
            elif not math.isnan(v):
                want[(meta.key, t)] = v
        messages.append(batch.encode())
    return messages, want


def stored(path: Path) -> Stored:
    """The raw samples of the test's series in the worker's TSDB (empty while it has not made the file yet)."""
    if not path.exists():
        return {}
    with sqlite3.connect(path) as db:
        try:
            rows = db.execute(
                "SELECT s.key, x.ts, x.value FROM samples x JOIN series s ON s.id = x.series_id WHERE s.name = ?",
                (NAME,),
            ).fetchall()
        except sqlite3.OperationalError:  # the worker is creating the schema
            return {}
    return {(str(key), int(ts)): value for key, ts, value in rows}


async def publish(publisher: Publisher, partition: int, messages: list[bytes]) -> None:
    spec = Topics.METRICS_RAW
    await publisher.publish([Message(spec, m, key=str(partition).encode(), partition=partition) for m in messages])


async def committed(broker_url: str, prefix: str, partition: int) -> int:
    """The stream group's committed offset of a partition of metrics.raw now (0 before its first commit)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers(broker_url), group_id=f"{prefix}aiops-stream", enable_auto_commit=False
    )
    await consumer.start()
    try:
        return await consumer.committed(TopicPartition(Topics.METRICS_RAW.full_name(prefix), partition)) or 0
    finally:
        await consumer.stop()


async def until_stored(worker: StreamWorker, path: Path, want: Stored) -> None:
    async def holds() -> bool:
        got = stored(path)
        assert len(got) >= len(want), f"{len(got)} of {len(want)} samples stored"
        return True

    await worker.eventually(holds, 60, f"{len(want)} samples in {path}")


async def test_every_sample_of_many_messages_is_stored_and_committed(
    stream_worker: type[StreamWorker], publisher: Publisher, broker_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    tsdb = tmp_path / "data" / "tsdb.sqlite"
    worker = stream_worker(**SETTINGS)
    sent: dict[int, list[bytes]] = {}
    want: Stored = {}
    for partition in range(4):
        sent[partition], expected = make_messages(partition, 60)
        want |= expected
    await worker.until_ready()
    for partition, messages in sent.items():
        await publish(publisher, partition, messages)

    await until_stored(worker, tsdb, want)
    assert stored(tsdb) == want
    for partition, messages in sent.items():
        await until_committed(broker_url, topic_prefix, partition, minimum=len(messages), worker=worker)


async def test_messages_are_committed_only_once_their_samples_are_written(
    stream_worker: type[StreamWorker], publisher: Publisher, broker_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    tsdb = tmp_path / "data" / "tsdb.sqlite"
    worker = stream_worker(**SETTINGS)
    first, want_first = make_messages(0, 1)
    await worker.until_ready()
    await publish(publisher, 0, first)
    await until_stored(worker, tsdb, want_first)
    await until_committed(broker_url, topic_prefix, 0, minimum=1, worker=worker)  # the group commits as it goes

    # The test holds the TSDB's write lock: the writer takes the next messages but cannot store them.
    lock = sqlite3.connect(tsdb, isolation_level=None)
    try:
        lock.execute("BEGIN IMMEDIATE")
        held, want_held = make_messages(0, 20, first=1)
        await publish(publisher, 0, held)

        async def failed_once() -> bool:
            lines = [line for line in worker.log().splitlines() if "tsdb write failed" in line]
            assert any("tsdb_raw_writer" in line for line in lines), "no failed raw write logged yet"
            return True

        # The write waits out SQLite's 5 s busy timeout before it fails: far past the group's 1 s commit interval.
        await worker.eventually(failed_once, 60, "the raw writer to fail on the locked TSDB")
        assert await committed(broker_url, topic_prefix, 0) == 1
        assert stored(tsdb) == want_first
    finally:
        lock.close()  # rolls back: the lock is free

    await until_stored(worker, tsdb, want_first | want_held)
    assert stored(tsdb) == want_first | want_held
    await until_committed(broker_url, topic_prefix, 0, minimum=1 + len(held), worker=worker)
