"""Offsets a replaying stage was not given are read from the broker with a plain consumer, in order, once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiops_common.broker import Publisher, bootstrap_servers, ensure_topics
from aiops_common.broker.publisher import Message
from aiops_common.broker.reader import read_to_end
from aiops_common.partition_replay import read_range
from aiops_common.testing.eventually import eventually, scaled
from aiops_common.topics import TopicSpec

pytestmark = pytest.mark.functional


async def _topic_with(broker_url: str, topic_prefix: str, messages: int) -> str:
    """A two-partition topic whose partition 1 holds ``messages`` values ``b"v<offset>"``."""
    spec = TopicSpec("replay", "test", None, 2, timedelta(hours=1), False, "replay test input")
    await ensure_topics(broker_url, topic_prefix, [spec])
    publisher = Publisher(broker_url, topic_prefix)
    try:
        # One record batch each: Tansu answers "latest offset" with the last batch's first offset + 1.
        for i in range(messages):
            await publisher.publish([Message(spec, f"v{i}".encode(), partition=1)])
    finally:
        await publisher.stop()
    return spec.full_name(topic_prefix)


def _values(first: int, last: int) -> list[tuple[int, bytes]]:
    return [(i, f"v{i}".encode()) for i in range(first, last + 1)]


async def test_a_skipped_range_is_read_before_the_delivered_offset(
    broker_url: str, topic_prefix: str, recording_stage: Callable[..., Any]
) -> None:
    topic = await _topic_with(broker_url, topic_prefix, 10)
    stage = recording_stage(topic, broker_url)
    await stage.handle(1, 0, b"v0")
    await stage.handle(1, 7, b"v7")  # Faust skipped 1..6
    await stage.handle(1, 4, b"v4")  # delivered late: already read
    await stage.handle(1, 8, b"v8")
    assert stage.states[1] == _values(0, 8)
    assert stage.next_offset[1] == 9
    assert stage.deliveries == 3


async def test_a_restored_partition_reads_from_its_checkpoint_up_to_the_first_delivered(
    broker_url: str, topic_prefix: str, recording_stage: Callable[..., Any]
) -> None:
    topic = await _topic_with(broker_url, topic_prefix, 10)
    stage = recording_stage(topic, broker_url, checkpoints={1: 4})
    await stage.handle(1, 9, b"v9")  # the group committed past the checkpoint
    assert stage.states[1] == _values(4, 9)


async def test_a_partition_opened_without_input_is_read_to_its_end(
    broker_url: str, topic_prefix: str, recording_stage: Callable[..., Any]
) -> None:
    topic = await _topic_with(broker_url, topic_prefix, 6)
    stage = recording_stage(topic, broker_url, checkpoints={0: 0, 1: 2})
    for partition in (0, 1):
        state = await stage.open_partition(partition, None)
        await stage.replay(partition, state, stage.next_offset[partition], None)
    assert stage.states == {0: [], 1: _values(2, 5)}
    assert stage.next_offset == {0: 0, 1: 6}


async def test_a_range_the_partition_does_not_hold_yet_times_out(broker_url: str, topic_prefix: str) -> None:
    topic = await _topic_with(broker_url, topic_prefix, 3)
    taken: list[int] = []

    async def take(record: Any) -> None:
        taken.append(record.offset)

    tp = TopicPartition(topic, 1)
    servers = bootstrap_servers(broker_url)
    assert await read_range(servers, tp, 1, 3, take, timeout_s=scaled(10)) == 3
    assert taken == [1, 2]
    taken.clear()
    with pytest.raises(TimeoutError, match=r"from 0 did not reach 5"):
        await read_range(servers, tp, 0, 5, take, timeout_s=1.5)
    assert taken == [0, 1, 2], "what there is was read before giving up"


async def test_to_the_end_reads_past_an_end_offset_that_stops_inside_the_last_batch(
    broker_url: str, topic_prefix: str
) -> None:
    spec = TopicSpec("replay", "test", None, 2, timedelta(hours=1), False, "replay test input")
    await ensure_topics(broker_url, topic_prefix, [spec])
    publisher = Publisher(broker_url, topic_prefix)
    try:  # one record batch of five: the embedded broker reports the end as its first offset + 1
        await publisher.publish([Message(spec, f"v{i}".encode(), partition=1) for i in range(5)])
    finally:
        await publisher.stop()
    taken: list[int] = []

    async def take(record: Any) -> None:
        taken.append(record.offset)

    tp = TopicPartition(spec.full_name(topic_prefix), 1)
    assert await read_range(bootstrap_servers(broker_url), tp, 0, None, take, timeout_s=scaled(10)) == 5
    assert taken == [0, 1, 2, 3, 4]
    values: list[bytes] = []
    await read_to_end(broker_url, spec, topic_prefix, values.append, timeout_s=scaled(10))
    assert values == [f"v{i}".encode() for i in range(5)]


async def test_to_the_end_of_a_partition_that_keeps_receiving_stops_at_the_end_as_of_the_call(
    broker_url: str, topic_prefix: str
) -> None:
    spec = TopicSpec("replay", "test", None, 2, timedelta(hours=1), False, "replay test input")
    await ensure_topics(broker_url, topic_prefix, [spec])
    publisher = Publisher(broker_url, topic_prefix)
    published = 0
    stop_feeding = asyncio.Event()

    async def feed() -> None:
        # One record batch at a time and no pause long enough for a fetch to come back empty: a live input.
        nonlocal published
        while not stop_feeding.is_set():
            await publisher.publish([Message(spec, f"v{published}".encode(), partition=1)])
            published += 1
            await asyncio.sleep(0.01)

    feeder = asyncio.create_task(feed())
    taken: list[int] = []

    async def take(record: Any) -> None:
        taken.append(record.offset)

    try:
        await eventually(lambda: published >= 20, timeout=30, what="the first records sent")
        before = published
        tp = TopicPartition(spec.full_name(topic_prefix), 1)
        # A timeout far above what the read takes: the read must end by itself, not by timing out.
        reached = await read_range(bootstrap_servers(broker_url), tp, 0, None, take, timeout_s=scaled(20))
        # The whole topic the same way (what the RCA reads its history with).
        before_topic = published
        values: list[bytes] = []
        await read_to_end(broker_url, spec, topic_prefix, values.append, timeout_s=scaled(20))
        assert not feeder.done(), "the input kept receiving through the reads"
    finally:
        stop_feeding.set()
        await feeder
        await publisher.stop()
    assert reached >= before, "everything sent before the read began was read"
    assert taken == list(range(reached)), "in offset order, once, up to the offset returned"
    assert len(values) >= before_topic
    assert values == [f"v{i}".encode() for i in range(len(values))]
