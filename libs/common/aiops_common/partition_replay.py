"""Restart-safe per-partition state: a checkpoint table, the next offset each partition needs, and a re-read of gaps."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Generic, TypeAlias, TypeVar, cast

import faust
import msgpack
import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from faust.exceptions import ConsumerNotStarted
from faust.tables.base import Collection
from faust.types import TP

from aiops_common.faust_app import checkpoint_store

__all__ = ["MAX_FETCH_BYTES", "ReplayingStage", "pack", "read_range", "unpack"]

log = structlog.get_logger(__name__)

MAX_FETCH_BYTES = 64 * 1024 * 1024

P = TypeVar("P")

Record: TypeAlias = ConsumerRecord[bytes, bytes]


def pack(entry: Mapping[str, Any]) -> bytes:
    """A checkpoint table entry that is a map, as msgpack."""
    data: bytes = msgpack.packb(dict(entry), use_bin_type=True)
    return data


def unpack(data: bytes) -> dict[str, Any]:
    value = msgpack.unpackb(data, raw=False, strict_map_key=False)
    if not isinstance(value, dict):
        raise ValueError("checkpoint is not a map")
    return value


async def read_range(
    servers: list[str],
    tp: TopicPartition,
    start: int,
    stop: int | None,
    take: Callable[[Record], Awaitable[None]],
    timeout_s: float,
) -> int:
    """Hand the records of ``[start, stop)`` of one partition to ``take`` in offset order; returns ``stop``.

    A plain consumer with no group, so nothing is committed and no rebalance is started.
    ``stop=None`` reads to the partition's end as of the call, and returns the offset after
    the last record read (at least that end). The end is the broker's end offset when the
    read starts, and the read stops with the fetch that reaches it: a broker may report the
    end as one past the first record of its last batch (the embedded one does), and a fetch
    carries whole batches, so the rest of that batch comes with it. Records produced while
    the read goes on are not waited for: a partition that keeps receiving has no moment when
    a fetch brings nothing, and a read that waited for one never ended (the idle timer of a
    stage that held its lock through it stopped the stage's consumer). Offsets that
    retention has deleted, or that hold no record, are passed over. Raises TimeoutError
    when the range is not read within ``timeout_s``, ``take``'s time included.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=servers,
        enable_auto_commit=False,
        # Offsets already deleted by retention: read what is left of the range.
        auto_offset_reset="earliest",
        fetch_max_bytes=MAX_FETCH_BYTES,
        max_partition_fetch_bytes=MAX_FETCH_BYTES,
    )
    deadline = time.monotonic() + timeout_s
    await consumer.start()
    try:
        consumer.assign([tp])
        to_end = stop is None
        if stop is None:
            stop = int((await consumer.end_offsets([tp]))[tp])
        end = stop
        consumer.seek(tp, start)
        while to_end or start < stop:
            if time.monotonic() > deadline:
                raise TimeoutError(f"re-read of {tp.topic}[{tp.partition}] from {start} did not reach {stop}")
            records = (await consumer.getmany(tp, timeout_ms=500)).get(tp, [])
            for record in records:
                if not to_end and record.offset >= stop:
                    return stop
                await take(record)
                if to_end:
                    stop = max(stop, record.offset + 1)
                elif record.offset == stop - 1:
                    return stop
            if to_end and records and records[-1].offset + 1 >= end:
                break  # the fetch that reached the end as of the call, its last batch whole
            if not records and await consumer.position(tp) >= stop:
                break  # the rest of the range is gone (retention) or was never records; to the end: nothing more
    finally:
        await consumer.stop()
    return stop


class ReplayingStage(ABC, Generic[P]):
    """One Faust agent over a source topic, whose state per input partition is rebuilt by re-reading its input.

    A subclass keeps a state ``P`` per input partition and its checkpoints in
    :attr:`table`, a changelog-backed table co-partitioned with the source, so whichever
    worker is assigned a partition recovers them. This driver knows, per partition, the
    next input offset the state needs (:attr:`next_offset`) and

    1. opens a partition on its first message after a (re)start or rebalance: the
       subclass restores the state from its checkpoint and says which offset it needs
       next (:meth:`restore`);
    2. drops a delivered message before that offset: the state already has it;
    3. reads the offsets in between with a plain consumer (:func:`read_range`) when a
       delivered offset is past that one, whatever offset the consumer group committed.
       A checkpoint lags the committed offset after a restore, and Faust does skip
       offsets: records fetched while a rebalance's recovery ends sit in the stream
       buffer that resuming the flow clears, after the read position has moved past
       them (faust-streaming #216/#221/#253);
    4. hands every message to the state in offset order (:meth:`take`), once;
    5. reads, when the subclass asks, what the partition holds past that offset
       although Faust delivered nothing more (:meth:`read_undelivered_tail`): skipped
       records that were the partition's last ones have no later record to reveal them.

    Where the state writes its checkpoints, what it publishes, and what makes publishing
    and checkpointing at-least-once are the subclass's.
    """

    table_suffix: str
    """The table is named ``<name>-<table_suffix>``."""
    table_help: str
    """What the table holds: its help text, after the stage's name."""

    def __init__(
        self, app: faust.App, name: str, source: faust.TopicT, partitions: int, replay_timeout_s: float
    ) -> None:
        self.app = app
        self.name = name
        self.source = source
        self.replay_timeout_s = replay_timeout_s
        self.table = app.Table(
            f"{name}-{self.table_suffix}",
            key_type=bytes,
            value_type=bytes,
            partitions=partitions,
            help=f"{name}: {self.table_help}",
            store=checkpoint_store(app),  # disk:// by default: the entries stay off the heap
        )
        # Entries are bytes already; set before the changelog topic is made, so it carries them as they are.
        collection = cast(Collection, self.table)
        collection.key_serializer = "raw"
        collection.value_serializer = "raw"
        self.states: dict[int, P] = {}
        self.next_offset: dict[int, int] = {}
        app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]  # mode's stub wants a keyword-only signal

        async def run(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
            async for event in stream.events():
                await self.handle(event.message.partition, event.message.offset, event.message.value)
                yield None

        self.agent = app.agent(source, name=name)(run)

    @abstractmethod
    def create(self, partition: int) -> P:
        """A state for the partition (it may read its checkpoint already)."""

    @abstractmethod
    async def restore(self, partition: int, state: P, delivered: int | None) -> int:
        """Finish opening the partition's state from its checkpoint; the first offset it needs.

        ``delivered`` is the first offset Faust delivered (None: opened without a message).
        """

    @abstractmethod
    async def take(self, partition: int, state: P, value: bytes | None, offset: int) -> None:
        """Take the message at ``offset`` into the state: delivered, or re-read."""

    async def after_delivery(self, partition: int, state: P) -> None:
        """Called after a delivered message, and any gap before it, was taken in."""

    def forget(self, partition: int) -> None:
        """Drop what this worker holds for a partition another worker takes over."""
        self.states.pop(partition, None)
        self.next_offset.pop(partition, None)

    async def _on_revoked(self, sender: Any, revoked: set[TP], **kwargs: Any) -> None:
        topic = self.source.get_topic_name()
        for tp in revoked:
            if tp.topic == topic:
                # The next owner starts from the checkpoint; what we hold is stale from now on.
                self.forget(tp.partition)

    async def open_partition(self, partition: int, delivered: int | None) -> P:
        state = self.create(partition)
        self.states[partition] = state
        self.next_offset[partition] = await self.restore(partition, state, delivered)
        return state

    async def handle(self, partition: int, offset: int, value: bytes | None) -> None:
        """One delivered message."""
        state = self.states.get(partition)
        if state is None:
            state = await self.open_partition(partition, offset)
        needed = self.next_offset[partition]
        if offset < needed:
            return  # before the checkpoint's offset, or already re-read
        if offset > needed:
            await self.replay(partition, state, needed, offset)
        await self._apply(partition, state, value, offset)
        await self.after_delivery(partition, state)

    async def replay(self, partition: int, state: P, start: int, stop: int | None) -> None:
        """Read ``[start, stop)`` of the partition again (``stop=None``: to its end) into the state."""

        async def take(record: Record) -> None:
            if record.offset >= self.next_offset[partition]:
                await self._apply(partition, state, record.value, record.offset)

        servers = [f"{url.host}:{url.port or 9092}" for url in self.app.conf.broker]
        tp = TopicPartition(self.source.get_topic_name(), partition)
        while True:
            begun = self.next_offset[partition]
            try:
                reached = await read_range(servers, tp, max(start, begun), stop, take, self.replay_timeout_s)
            except TimeoutError:
                # The timeout guards against a read that is stuck, not one that is slow: a worker behind a busy
                # input (a rebalance under sustained load) goes on from where it got to while it still moves.
                if self.next_offset[partition] <= begun:
                    raise
                log.warning(
                    "re-read slower than its timeout; going on",
                    stage=self.name,
                    partition=partition,
                    reached=self.next_offset[partition],
                    stop=stop,
                )
                continue
            break
        self.next_offset[partition] = max(self.next_offset[partition], reached)
        log.info("replayed input", stage=self.name, partition=partition, start=start, stop=reached)

    async def read_undelivered_tail(self, partition: int, state: P) -> bool:
        """Read what the partition holds past :attr:`next_offset` into the state; True when it read something.

        For a partition nothing was delivered from for a while: the records Faust skips at the
        end of a rebalance (see the class) are found by :meth:`handle` when a later record is
        delivered, but when they are the partition's last ones none comes, and they wait for
        the next input. When to look is the subclass's (the read opens a consumer); the
        caller holds whatever keeps deliveries out meanwhile. The consumer's highwater, when
        it knows it, says whether there is anything to read: it comes with every fetch and
        counts whole batches, where the broker's end offset may stop inside the last batch
        (the embedded broker's does), and a tail that begins inside it would look read.
        Unknown (no fetch of the partition yet, no consumer running): the partition is read
        to its end as of the call.
        """
        start = self.next_offset[partition]
        end = self._consumer_highwater(partition)
        if end is not None and end <= start:
            return False
        await self.replay(partition, state, start, None)
        stop = self.next_offset[partition]
        if stop == start:
            return False
        log.warning(
            "read records Faust had not delivered", stage=self.name, partition=partition, start=start, stop=stop
        )
        return True

    def _consumer_highwater(self, partition: int) -> int | None:
        """The offset after the partition's last record as this worker's consumer last fetched it; None: not known."""
        consumer = self.app.consumer
        tp = TP(self.source.get_topic_name(), partition)
        try:
            if tp not in consumer.assignment():
                return None  # being revoked: its fetches are no longer this consumer's
            end: int | None = consumer.highwater(tp)
        except (ConsumerNotStarted, AssertionError, AttributeError):
            # Not started, or a rebalance (on the consumer's own thread) took the partition between the two calls.
            return None
        return end

    async def _apply(self, partition: int, state: P, value: bytes | None, offset: int) -> None:
        await self.take(partition, state, value, offset)
        self.next_offset[partition] = offset + 1
