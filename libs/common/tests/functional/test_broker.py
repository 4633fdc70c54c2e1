"""The embedded broker starts, takes acknowledged batches on the right partitions, and refuses a taken port."""

from __future__ import annotations

import socket

import pytest
from aiops_common.broker import BrokerStartError, EmbeddedBroker, Publisher, ensure_topics
from aiops_common.broker.publisher import Message
from aiops_common.broker.reader import read_values
from aiops_common.schemas import MetricBatch, MetricBatchBuilder
from aiops_common.testing.eventually import scaled
from aiops_common.topics import Topics

pytestmark = pytest.mark.functional


async def test_publish_is_acknowledged_and_lands_on_the_chosen_partitions(broker_url: str, topic_prefix: str) -> None:
    created = await ensure_topics(broker_url, topic_prefix, [Topics.METRICS_RAW])
    assert created == [Topics.METRICS_RAW.full_name(topic_prefix)]
    assert await ensure_topics(broker_url, topic_prefix, [Topics.METRICS_RAW]) == [], "idempotent"
    builder = MetricBatchBuilder(Topics.METRICS_RAW.partitions)
    for i in range(1000):
        builder.add("m", {"i": str(i % 100)}, i, float(i))
    publisher = Publisher(broker_url, topic_prefix)
    try:
        assert await publisher.ping()
        await publisher.publish(
            [Message(Topics.METRICS_RAW, b.encode(), partition=p) for p, b in builder.by_partition().items()]
        )
    finally:
        await publisher.stop()
    values = await read_values(
        broker_url,
        Topics.METRICS_RAW,
        topic_prefix,
        until=lambda v: sum(len(MetricBatch.decode(x)) for x in v) >= 1000,
        timeout_s=scaled(20),
    )
    assert sorted(v for raw in values for _m, _t, v in MetricBatch.decode(raw).samples()) == [
        float(i) for i in range(1000)
    ]


def test_taken_port_and_stop(tmp_path: object) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(BrokerStartError, match=f"127.0.0.1:{port} is already in use"):
            EmbeddedBroker(port).start()
    broker = EmbeddedBroker()
    broker.start()
    assert broker.running
    broker.stop()
    assert not broker.running
