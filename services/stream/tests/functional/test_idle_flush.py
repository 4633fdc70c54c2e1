"""A partition whose input goes quiet still closes its last windows, also when its worker was killed meanwhile."""

from __future__ import annotations

import pytest
from aiops_common.broker import Publisher
from aiops_common.schemas import MetricBatchBuilder, MetricKind
from aiops_common.topics import Topics

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

T0 = 1_700_000_040_000  # a multiple of 20 s
PARTITION = 3
SETTINGS = {
    "stream_window_s": 10,
    "stream_rollups": "[20]",
    # Quiet for 17.5 s of wall-clock time, event time moves on: the first worker must be killed before that,
    # so the margin is wide for a loaded machine (the worker commits within about a second).
    "stream_allowed_lateness_s": 7.5,
    "stream_absent_after_windows": 1,
    "stream_tsdb_enabled": False,
}


def make_messages() -> list[bytes]:
    """Samples every 2.5 s of event time from T0 + 2.5 s to T0 + 27.5 s, three messages."""
    out = []
    for part in range(3):
        builder = MetricBatchBuilder()
        for i in range(4):
            at = 2_500 + part * 10_000 + i * 2_500
            if at > 27_500:
                continue
            builder.add("cpu", {"host": "a"}, T0 + at, float(at % 7), MetricKind.GAUGE)
            builder.add("requests_total", {"host": "a"}, T0 + at, float(at // 100), MetricKind.COUNTER)
        out.append(builder.build().encode())
    return out


async def test_quiet_partition_closes_its_last_windows_across_a_restart(
    stream_worker: type[StreamWorker],
    publisher: Publisher,
    features: TopicReader,
    broker_url: str,
    topic_prefix: str,
) -> None:
    messages = make_messages()
    # Quiet for 25 s: the watermark reaches T0 + 45 s, closing [20, 30) and [30, 40) and the 20 s window [20, 40).
    want = uninterrupted_rows(SETTINGS, [(PARTITION, m) for m in messages], idle_ms=25_000)
    last_window = ('cpu{host="a"}', T0 + 20_000, 10_000)
    assert {last_window, ('cpu{host="a"}', T0 + 20_000, 20_000)} <= set(want)
    assert want[('cpu{host="a"}', T0 + 30_000, 10_000)]["absent"] == 1.0

    worker = stream_worker(**SETTINGS)
    for value in messages:
        await send(publisher, Topics.METRICS_RAW, value, PARTITION)
    # The input closed [0, 10) and [10, 20); the worker dies before the partition has been quiet long enough,
    # but after committing its input and checkpointing, so nothing is delivered to the restarted one.
    await features.until(lambda v: ('cpu{host="a"}', T0 + 10_000, 10_000) in feature_rows(v), 60, worker)
    await until_committed(broker_url, topic_prefix, PARTITION, minimum=len(messages), worker=worker)
    await until_checkpointed(broker_url, topic_prefix, PARTITION, worker)
    worker.kill()
    assert "closed idle windows" not in worker.log(), "the first worker flushed before it was killed"
    assert last_window not in feature_rows(features.values)

    # No more input: the restarted worker opens the partition from its checkpoint and flushes it.
    restarted = stream_worker(**SETTINGS)
    await features.until(lambda v: set(want) <= set(feature_rows(v)), 60, restarted)
    got = feature_rows(features.values)  # asserts a row delivered twice is the same row
    assert_rows_equal(got, want)
    assert "closed idle windows" in restarted.log()
