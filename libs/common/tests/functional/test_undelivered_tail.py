"""A quiet partition's tail that Faust fetched and never delivered is read into the state once, and only when there."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, MutableMapping
from datetime import timedelta
from typing import Any

import pytest
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiops_common import partition_replay
from aiops_common.broker import Publisher, bootstrap_servers, ensure_topics
from aiops_common.broker.publisher import Message
from aiops_common.testing.eventually import eventually, scaled
from aiops_common.topics import TopicSpec
from structlog.testing import LogCapture

pytestmark = pytest.mark.functional

SPEC = TopicSpec("tail", "test", None, 2, timedelta(hours=1), False, "undelivered tail test input")


async def _publish(broker_url: str, topic_prefix: str, batches: list[range]) -> None:
    """Partition 1 gets ``b"v<offset>"`` for each offset, one record batch per range."""
    publisher = Publisher(broker_url, topic_prefix)
    try:
        for batch in batches:
            await publisher.publish([Message(SPEC, f"v{i}".encode(), partition=1) for i in batch])
    finally:
        await publisher.stop()


async def _topic(broker_url: str, topic_prefix: str) -> str:
    """Offsets 0, 1, 2 one batch each, then 3..7 in one batch: the broker's end offset stops inside that one."""
    await ensure_topics(broker_url, topic_prefix, [SPEC])
    await _publish(broker_url, topic_prefix, [range(0, 1), range(1, 2), range(2, 3), range(3, 8)])
    return SPEC.full_name(topic_prefix)


def _values(first: int, last: int) -> list[tuple[int, bytes]]:
    return [(i, f"v{i}".encode()) for i in range(first, last + 1)]


@pytest.fixture
def warnings(monkeypatch: pytest.MonkeyPatch) -> LogCapture:
    """What the re-read module logs, whatever structlog configuration (and logger cache) the process has."""
    capture = LogCapture()
    monkeypatch.setattr(partition_replay, "log", structlog.wrap_logger(None, processors=[capture]))
    return capture


def _warned(capture: LogCapture) -> list[MutableMapping[str, Any]]:
    return [entry for entry in capture.entries if entry["log_level"] == "warning"]


@pytest.fixture
async def fetched(broker_url: str) -> AsyncIterator[Callable[[str], AIOKafkaConsumer]]:
    """``fetched(topic)``: a started plain consumer assigned both partitions (stopped at the end of the test)."""
    consumers: list[AIOKafkaConsumer] = []

    def make(topic: str) -> AIOKafkaConsumer:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers(broker_url), enable_auto_commit=False)
        consumers.append(consumer)
        consumer.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
        return consumer

    yield make
    for consumer in consumers:
        await consumer.stop()


async def test_a_tail_that_begins_inside_the_last_batch_is_read_once_when_the_end_is_not_known(
    broker_url: str, topic_prefix: str, recording_stage: Callable[..., Any], warnings: LogCapture
) -> None:
    topic = await _topic(broker_url, topic_prefix)
    stage = recording_stage(topic, broker_url, checkpoints={0: 0, 1: 0})
    for offset in range(5):  # Faust delivered 0..4 and dropped 5..7 (its consumer is not running: no highwater)
        await stage.handle(1, offset, f"v{offset}".encode())
    assert await stage.read_undelivered_tail(1, stage.states[1]) is True
    assert stage.states[1] == _values(0, 7)
    assert stage.next_offset[1] == 8
    assert stage.deliveries == 5, "a re-read is not a delivery"
    assert _warned(warnings) == [
        {
            "event": "read records Faust had not delivered",
            "log_level": "warning",
            "stage": "recorder",
            "partition": 1,
            "start": 5,
            "stop": 8,
        }
    ]
    warnings.entries.clear()

    assert await stage.read_undelivered_tail(1, stage.states[1]) is False, "nothing past the end"
    state = await stage.open_partition(0, None)
    assert await stage.read_undelivered_tail(0, state) is False, "an empty partition"
    assert stage.states == {0: [], 1: _values(0, 7)}
    assert stage.next_offset == {0: 0, 1: 8}
    assert _warned(warnings) == []


def _faust_consumer_is(stage: Any, consumer: AIOKafkaConsumer | None) -> None:
    """Give the stage's Faust consumer this client, as a running worker's has one: assigned, fetching."""
    stage.app.consumer._thread._consumer = consumer


async def _fetch_to_the_end(consumer: AIOKafkaConsumer, tp: TopicPartition, end: int) -> None:
    await consumer.start()
    consumer.seek(tp, 0)
    last: list[int] = []

    async def reached() -> bool:
        last[:] = [r.offset for r in (await consumer.getmany(tp, timeout_ms=200)).get(tp, [])][-1:] or last
        return consumer.highwater(tp) == end and last == [end - 1]

    await eventually(reached, timeout=scaled(30), what=f"partition {tp.partition} fetched to {end}")


async def test_the_consumers_highwater_says_whether_there_is_a_tail(
    broker_url: str,
    topic_prefix: str,
    recording_stage: Callable[..., Any],
    warnings: LogCapture,
    fetched: Callable[[str], AIOKafkaConsumer],
) -> None:
    topic = await _topic(broker_url, topic_prefix)
    tp = TopicPartition(topic, 1)
    stage = recording_stage(topic, broker_url, checkpoints={1: 0})
    consumer = fetched(topic)
    await _fetch_to_the_end(consumer, tp, 8)
    _faust_consumer_is(stage, consumer)
    try:
        for offset in range(5):  # delivered 0..4; 5..7 were fetched and dropped
            await stage.handle(1, offset, f"v{offset}".encode())
        # The broker's end offset (4 on the embedded broker) would say all was read; the fetch's highwater does not.
        assert await stage.read_undelivered_tail(1, stage.states[1]) is True
        assert stage.states[1] == _values(0, 7)
        assert [(e["start"], e["stop"]) for e in _warned(warnings)] == [(5, 8)]
        assert await stage.read_undelivered_tail(1, stage.states[1]) is False

        # One more record, fetched (and, say, dropped again): the highwater is past the state's next offset.
        await _publish(broker_url, topic_prefix, [range(8, 9)])
        await eventually(lambda: consumer.highwater(tp) == 9, timeout=scaled(30), what="the new record fetched")
        assert await stage.read_undelivered_tail(1, stage.states[1]) is True
        assert stage.states[1] == _values(0, 8)
        assert stage.next_offset[1] == 9
        assert [(e["start"], e["stop"]) for e in _warned(warnings)] == [(5, 8), (8, 9)]
        assert stage.deliveries == 5
    finally:
        _faust_consumer_is(stage, None)


async def test_a_known_highwater_at_the_next_offset_costs_no_read(
    broker_url: str,
    topic_prefix: str,
    recording_stage: Callable[..., Any],
    warnings: LogCapture,
    fetched: Callable[[str], AIOKafkaConsumer],
) -> None:
    topic = await _topic(broker_url, topic_prefix)
    # The stage's own address is a closed port: a read would fail, so a call that returns did not read.
    stage = recording_stage(topic, checkpoints={0: 0, 1: 8})
    consumer = fetched(topic)
    await _fetch_to_the_end(consumer, TopicPartition(topic, 1), 8)
    await eventually(
        lambda: consumer.highwater(TopicPartition(topic, 0)) == 0, timeout=scaled(30), what="partition 0 fetched"
    )
    _faust_consumer_is(stage, consumer)
    try:
        for partition in (0, 1):
            state = await stage.open_partition(partition, None)
            assert await stage.read_undelivered_tail(partition, state) is False
        assert stage.states == {0: [], 1: []}
        assert _warned(warnings) == []
    finally:
        _faust_consumer_is(stage, None)
