"""The next message is processed while the broker takes the last close's features in; checkpoints wait for the ack."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psutil
import pytest
from aiops_common.broker import EmbeddedBroker, ensure_topics
from aiops_common.faust_app import create_app
from aiops_common.partition_replay import unpack
from aiops_common.process import suspended
from aiops_common.schemas import FeatureBatch, MetricBatchBuilder
from aiops_common.topics import Topics
from aiops_stream import window_aggregator
from aiops_stream.checkpoint import CheckpointedStage
from aiops_stream.settings import StreamSettings

from ..conftest import TopicReader

pytestmark = pytest.mark.functional

T0 = 1_700_000_000_000  # a multiple of 10 s
PARTITION = 2


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[tuple[str, psutil.Process]]:
    """A broker of this test's own, and its process: the test suspends it."""
    with EmbeddedBroker(log_path=tmp_path / "tansu.log") as broker:
        port = str(broker.port)
        (process,) = [p for p in psutil.Process().children() if port in " ".join(p.cmdline())]
        try:
            yield broker.url, process
        finally:
            process.send_signal(signal.SIGCONT)


@pytest.fixture
async def stage(own_broker: tuple[str, psutil.Process], tmp_path: Path) -> AsyncIterator[CheckpointedStage]:
    """The window aggregator's stage on an app whose producer runs; messages are handed to it directly."""
    broker_url, _ = own_broker
    settings = StreamSettings(broker_url=broker_url, topic_prefix="pipe.", data_dir=tmp_path / "data")
    await ensure_topics(broker_url, settings.topic_prefix)
    app = create_app("stream", settings)
    stage = window_aggregator.install(app, settings)
    await stage.table.changelog_topic.maybe_declare()
    await app.maybe_start_producer()
    yield stage
    await app.producer.stop()


def scrape(second: int) -> bytes:
    builder = MetricBatchBuilder()
    for host in range(40):
        builder.add("cpu", {"host": str(host)}, T0 + second * 1_000, float(second))
    return builder.build().encode()


def applied(stage: CheckpointedStage) -> int:
    entry = stage.table.data.get(f"{PARTITION}".encode())
    assert entry is not None
    return int(unpack(entry)["applied"])


async def test_a_close_is_checkpointed_only_once_the_broker_has_its_features(
    own_broker: tuple[str, psutil.Process], stage: CheckpointedStage
) -> None:
    broker_url, broker = own_broker
    await stage.handle(PARTITION, 0, scrape(1))
    await stage.handle(PARTITION, 1, scrape(16))  # closes [T0, T0 + 10 s)
    await asyncio.wait_for(stage.settle(), 20)
    assert applied(stage) == 1

    with suspended(broker.pid):
        # Neither message waits for the broker, which answers nothing now.
        await asyncio.wait_for(stage.handle(PARTITION, 2, scrape(26)), 5)  # closes [T0 + 10 s, T0 + 20 s)
        await asyncio.wait_for(stage.handle(PARTITION, 3, scrape(36)), 5)
        assert applied(stage) == 1, "a checkpoint claimed features the broker has not acknowledged"
    await asyncio.wait_for(stage.settle(), 20)
    assert applied(stage) == 3

    reader = TopicReader(broker_url, Topics.FEATURES.full_name("pipe."), FeatureBatch.decode)
    await reader.start()
    try:
        want = {T0 + 10_000 * i for i in range(3)}
        await reader.until(lambda v: want <= {int(s) for b in v for s in b.start_ms.tolist()}, 20)
    finally:
        await reader.stop()
