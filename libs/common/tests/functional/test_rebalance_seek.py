"""After a rebalance, a partition the group never committed goes back to its start: its fetched records come again.

Faust ends every rebalance by seeking each partition to the group's committed offset. aiokafka's seek
passes over a partition with none, so the records fetched before the rebalance (and cleared from the
agents' buffers with it) were never delivered: the first anomaly on a fresh partition, taken while a
restarted correlation worker still rebalanced, was lost. Real broker, real aiokafka group consumer.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from aiops_common.broker import Publisher, bootstrap_servers, ensure_topics
from aiops_common.broker.publisher import Message
from aiops_common.faust_app import create_app
from aiops_common.faust_transport import seek_committed_or_reset
from aiops_common.settings import CommonSettings
from aiops_common.testing.eventually import scaled
from aiops_common.topics import TopicSpec

pytestmark = pytest.mark.functional

SPEC = TopicSpec("seek", "test", None, 2, timedelta(hours=1), False, "rebalance seek test input")
RECORDS = 5


async def _publish(broker_url: str, spec: TopicSpec, prefix: str) -> str:
    """``RECORDS`` records ``b"p<partition>-<offset>"`` on each partition of a new topic; returns its name."""
    await ensure_topics(broker_url, prefix, [spec])
    publisher = Publisher(broker_url, prefix)
    try:
        for partition in range(spec.partitions):
            for i in range(RECORDS):  # a batch each: the embedded broker's end offset stops inside a batch
                await publisher.publish([Message(spec, f"p{partition}-{i}".encode(), partition=partition)])
    finally:
        await publisher.stop()
    return spec.full_name(prefix)


GroupConsumer = Callable[[list[TopicPartition]], AIOKafkaConsumer]


@pytest.fixture
async def group_consumer(broker_url: str) -> AsyncIterator[GroupConsumer]:
    """``group_consumer(tps)``: a consumer of a new group, assigned ``tps`` (started by the test, stopped after)."""
    consumers: list[AIOKafkaConsumer] = []

    def make(tps: list[TopicPartition]) -> AIOKafkaConsumer:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers(broker_url),
            group_id=f"seek-{uuid.uuid4().hex[:10]}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        consumers.append(consumer)
        consumer.assign(tps)
        return consumer

    yield make
    for consumer in consumers:
        await consumer.stop()


async def _fetch_all(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> dict[TopicPartition, list[bytes]]:
    """What the consumer fetches until every partition's position is at ``RECORDS`` (as a worker that fetched ahead)."""
    got: dict[TopicPartition, list[bytes]] = {tp: [] for tp in tps}
    deadline = time.monotonic() + scaled(30)
    while not all([await consumer.position(tp) >= RECORDS for tp in tps]):
        assert time.monotonic() < deadline, {tp: await consumer.position(tp) for tp in tps}
        for tp, records in (await consumer.getmany(*tps, timeout_ms=200)).items():
            got[tp].extend(r.value for r in records if r.value is not None)
    return got


async def _fetched(
    broker_url: str, topic_prefix: str, group_consumer: GroupConsumer
) -> tuple[list[TopicPartition], AIOKafkaConsumer, dict[TopicPartition, list[bytes]]]:
    """The test topic's two partitions, a group consumer that fetched both to their ends, and what it fetched."""
    topic = await _publish(broker_url, SPEC, topic_prefix)
    tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
    consumer = group_consumer(tps)
    await consumer.start()
    return tps, consumer, await _fetch_all(consumer, tps)


async def test_aiokafka_alone_leaves_an_uncommitted_partition_where_the_fetcher_got_to(
    broker_url: str, topic_prefix: str, group_consumer: GroupConsumer
) -> None:
    """The defect: what Faust's rebalance ran before, on the same broker and client."""
    tps, consumer, _ = await _fetched(broker_url, topic_prefix, group_consumer)
    await consumer.commit({tps[1]: OffsetAndMetadata(3, "")})

    assert await consumer.seek_to_committed() == {tps[0]: None, tps[1]: 3}
    assert await consumer.position(tps[0]) == RECORDS, "left past the records it fetched"
    assert await consumer.position(tps[1]) == 3


async def test_an_uncommitted_partition_goes_back_to_its_start_and_a_committed_one_to_its_offset(
    broker_url: str, topic_prefix: str, group_consumer: GroupConsumer
) -> None:
    tps, consumer, first = await _fetched(broker_url, topic_prefix, group_consumer)
    assert first[tps[0]] == [f"p0-{i}".encode() for i in range(RECORDS)]
    await consumer.commit({tps[1]: OffsetAndMetadata(3, "")})

    assert await seek_committed_or_reset(consumer, "earliest") == {tps[0]: None, tps[1]: 3}
    assert await consumer.position(tps[0]) == 0
    assert await consumer.position(tps[1]) == 3
    again = await _fetch_all(consumer, tps)
    assert again == {tps[0]: first[tps[0]], tps[1]: [b"p1-3", b"p1-4"]}, "every record not committed comes again"

    # Committed at 0 is no commit either (aiokafka passes over it too).
    await consumer.commit({tps[0]: OffsetAndMetadata(0, "")})
    assert await seek_committed_or_reset(consumer, "earliest") == {tps[0]: 0, tps[1]: 3}
    assert await consumer.position(tps[0]) == 0


async def test_the_latest_policy_goes_to_the_end_and_kept_topics_stay_where_they_are(
    broker_url: str, topic_prefix: str, group_consumer: GroupConsumer
) -> None:
    tps, consumer, _ = await _fetched(broker_url, topic_prefix, group_consumer)
    topic = tps[0].topic

    consumer.seek(tps[0], 2)
    consumer.seek(tps[1], 1)
    await seek_committed_or_reset(consumer, "latest")
    assert [await consumer.position(tp) for tp in tps] == [RECORDS, RECORDS]

    consumer.seek(tps[0], 2)
    consumer.seek(tps[1], 1)
    await seek_committed_or_reset(consumer, "earliest", keep={topic})
    assert [await consumer.position(tp) for tp in tps] == [2, 1], "a kept topic's partitions are not moved"


async def test_a_workers_consumer_thread_seeks_its_streams_back_and_leaves_its_changelogs(
    broker_url: str, topic_prefix: str, group_consumer: GroupConsumer, tmp_path: Path
) -> None:
    """The app :func:`create_app` builds: its consumer thread runs the seek with its policy and its tables."""
    app = create_app("seek", CommonSettings(data_dir=tmp_path, topic_prefix=topic_prefix), broker_url)
    table = app.Table("windows", partitions=1)
    changelog = table.changelog_topic.get_topic_name()
    assert changelog in app.tables.changelog_topics
    stream = await _publish(broker_url, SPEC, topic_prefix)
    await _publish(broker_url, TopicSpec(changelog, "k", None, 1, timedelta(hours=1), False, "changelog"), "")
    tps = [TopicPartition(stream, 0), TopicPartition(changelog, 0)]
    consumer = group_consumer(tps)
    await consumer.start()
    await _fetch_all(consumer, tps)
    thread = app.consumer._thread  # type: ignore[attr-defined]  # Faust's consumer, on the worker's own transport
    thread._consumer = consumer  # the client a running worker's thread holds: assigned, fetched ahead

    assert await thread.seek_committed_or_reset() == {tps[0]: None, tps[1]: None}
    assert await consumer.position(tps[0]) == 0, "the stream partition's records come again"
    assert await consumer.position(tps[1]) == RECORDS, "the changelog is left to table recovery"
