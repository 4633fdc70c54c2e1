"""Faust's Kafka transport: the workers' fetch wait from the settings, and a rebalance that loses no record.

Two changes to Faust's aiokafka driver:

- the fetch wait is ``fetch_max_wait_ms`` from the settings instead of fixed at 1.5 s;
- after a rebalance, a partition the group has no committed offset for goes back to its start
  (:func:`seek_committed_or_reset`). Faust ends every rebalance by seeking each partition to its
  committed offset, and aiokafka's seek passes over a partition with none (or offset 0): it stays
  where the fetcher got to. The records fetched before the rebalance and cleared from the agents'
  buffers with it were then never delivered, and the first commit after them moved the group past
  them: a partition's first records, taken while a worker that restarted still rebalanced, were lost.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import cast

import aiokafka
from aiokafka import TopicPartition
from faust.transport.drivers import aiokafka as driver
from faust.types import TP

__all__ = ["Transport", "seek_committed_or_reset"]


async def seek_committed_or_reset(
    consumer: aiokafka.AIOKafkaConsumer, reset: str, keep: Collection[str] = ()
) -> dict[TopicPartition, int | None]:
    """Seek every assigned partition to the group's committed offset; returns the committed offsets.

    A partition with no committed offset, or 0, is seeked by ``reset`` (Faust's
    ``consumer_auto_offset_reset``): to its start unless that is ``"latest"``, its end then.
    Partitions of the topics in ``keep`` (tables' changelogs: their recovery sets their
    positions, and the group never commits them) are left where they are.
    """
    committed: dict[TopicPartition, int | None] = dict(await consumer.seek_to_committed())
    uncommitted = [tp for tp, offset in committed.items() if not offset and tp.topic not in keep]
    if uncommitted:
        if reset == "latest":
            await consumer.seek_to_end(*uncommitted)
        else:
            await consumer.seek_to_beginning(*uncommitted)
    return committed


class _ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: driver.Transport) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # Read once, by the fetcher the consumer builds when it starts (aiokafka is pinned in pyproject.toml).
        consumer._fetch_max_wait_ms = cast(Transport, transport).fetch_max_wait_ms
        return consumer

    async def seek_to_committed(self) -> Mapping[TP, int]:
        """Seek partitions to their committed offsets, and those with none to their start (see the module)."""
        result: Mapping[TP, int] = await self.call_thread(self.seek_committed_or_reset)
        return result

    async def seek_committed_or_reset(self) -> Mapping[TP, int]:
        """:func:`seek_committed_or_reset` with the app's reset policy, its tables' changelogs kept; on the thread."""
        reset = self.app.conf.consumer_auto_offset_reset
        committed = await seek_committed_or_reset(self._ensure_consumer(), reset, self.app.tables.changelog_topics)
        return cast(Mapping[TP, int], committed)  # Faust's annotation: it gets None for a partition with none


class _Consumer(driver.Consumer):
    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(driver.Transport):
    """The aiokafka transport with the settings' fetch wait and a seek that keeps uncommitted partitions' records."""

    Consumer = _Consumer
    fetch_max_wait_ms: int = 1500
