"""SIGKILL the stream worker mid-stream, start it again: every (series, window) row arrives once, same numbers."""

from __future__ import annotations

import asyncio
import struct

import numpy as np
import pytest
from aiops_common.broker import Publisher
from aiops_common.schemas import MetricBatchBuilder, MetricKind
from aiops_common.topics import Topics
from aiops_stream.tumbling import STALE_NAN_BITS

from ..conftest import (
    StreamWorker,
    TopicReader,
    assert_rows_equal,
    feature_rows,
    send,
    uninterrupted_rows,
    until_checkpointed,
    until_committed,
)

pytestmark = pytest.mark.functional

STALE = struct.unpack("<d", struct.pack("<Q", STALE_NAN_BITS))[0]
T0 = 1_700_000_040_000
PARTITIONS = 4
SETTINGS = {
    "stream_window_s": 10,
    "stream_rollups": "[60]",
    "stream_allowed_lateness_s": 2,
    "stream_forget_after_s": 60,  # short, so the replay point moves on and the replay is a real catch-up
    "stream_tsdb_enabled": False,
    # No idle flush: the uninterrupted run has none, and a restarted worker still catching up on a busy machine
    # left a partition that had all its input quiet past 12 s, and closed its last windows (test_idle_flush.py's).
    "stream_idle_flush_s": 600,
}


def make_stream(seed: int = 7, messages_per_partition: int = 80) -> list[tuple[int, bytes]]:
    """(partition, MetricBatch) in the order they are produced: 2 s of event time per message, jittered."""
    rng = np.random.default_rng(seed)
    out: list[tuple[int, bytes]] = []
    counters = np.zeros((PARTITIONS, 6))
    for i in range(messages_per_partition):
        for part in range(PARTITIONS):
            builder = MetricBatchBuilder()
            now = T0 + 2_000 * i
            for s in range(12):
                if s == 11 and i > 30:
                    continue  # goes silent
                ts = now + int(rng.integers(-2_500, 1_000))
                if s < 6:
                    counters[part, s] = 0 if rng.random() < 0.03 else counters[part, s] + int(rng.integers(0, 9))
                    builder.add(
                        "requests_total",
                        {"p": str(part), "s": str(s)},
                        ts,
                        float(counters[part, s]),
                        MetricKind.COUNTER,
                    )
                else:
                    value = STALE if (s == 10 and i == 40) else float(np.round(rng.normal(50, 10), 3))
                    builder.add("latency", {"p": str(part), "s": str(s)}, ts, value)
            out.append((part, builder.build().encode()))
    return out


async def test_sigkill_mid_stream_loses_and_double_counts_nothing(
    stream_worker: type[StreamWorker],
    publisher: Publisher,
    features: TopicReader,
    broker_url: str,
    topic_prefix: str,
) -> None:
    stream = make_stream()
    want = uninterrupted_rows(SETTINGS, stream)
    assert len(want) > 500 and any(r["absent"] == 1.0 for r in want.values())
    first, second, third = (
        stream[: len(stream) * 2 // 5],
        stream[len(stream) * 2 // 5 : len(stream) * 7 // 10],
        stream[len(stream) * 7 // 10 :],
    )

    worker = stream_worker(**SETTINGS)
    for part, value in first:
        await send(publisher, Topics.METRICS_RAW, value, part)
    # Mid-stream: the worker has emitted some windows, and is still producing more when it dies.
    await features.until(lambda v: len(feature_rows(v)) > len(want) // 5, 60, worker)
    await until_committed(broker_url, topic_prefix, 0, minimum=20, worker=worker)
    await until_checkpointed(broker_url, topic_prefix, 0, worker)  # the restart has a checkpoint to restore
    sending = asyncio.ensure_future(_send_all(publisher, second))
    await asyncio.sleep(0)
    worker.kill()
    await sending
    rows_before_restart = len(feature_rows(features.values))
    assert rows_before_restart < len(want)

    restarted = stream_worker(**SETTINGS)
    for part, value in third:
        await send(publisher, Topics.METRICS_RAW, value, part)
    await features.until(lambda v: set(feature_rows(v)) >= set(want), 90, restarted)

    got = feature_rows(features.values)  # asserts a row delivered twice is the same row
    assert set(got) == set(want)
    assert_rows_equal(got, want)
    assert "restored checkpoint" in restarted.log()
    # The group had committed past the replay point: the windows were rebuilt by reading the input again.
    assert "replayed input" in restarted.log()


async def _send_all(publisher: Publisher, items: list[tuple[int, bytes]]) -> None:
    for part, value in items:
        await send(publisher, Topics.METRICS_RAW, value, part)
