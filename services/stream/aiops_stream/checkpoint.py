"""Restart-safe partition state: a small checkpoint in a Faust table, and a replay of the input since it.

A stage's state for one input partition (open windows, counter baselines, a span
index, a log-template miner) is too large to write to a changelog on every
message, but it is a pure function of a small checkpoint plus the input messages
from the checkpoint's ``replay_from`` offset on. So the driver here

1. feeds each message of the partition to the stage's :class:`PartitionProcessor`;
2. when the processor closes windows, publishes what it produced, waits for the
   broker's acknowledgement, and only then writes the checkpoint to a
   changelog-backed Faust table (keyed by input partition, so it is recovered by the
   worker that is assigned the partition);
3. on the first message of a partition after a (re)start, restores the checkpoint
   and re-reads the input from ``replay_from`` up to that message with a plain
   consumer, whatever offset the consumer group had committed.

A worker killed between publishing and checkpointing publishes the same batches
again (same ids, same rows): delivery is at-least-once and consumers deduplicate;
nothing is lost, and no window is counted twice into one row.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, cast

import faust
import msgpack
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.tables.base import Collection
from faust.types import TP, EventT

__all__ = ["CheckpointedStage", "Outbound", "PartitionProcessor", "ProcessorFactory", "pack", "unpack"]

log = structlog.get_logger(__name__)

MAX_FETCH_BYTES = 64 * 1024 * 1024


def pack(state: Mapping[str, Any]) -> bytes:
    data: bytes = msgpack.packb(dict(state), use_bin_type=True)
    return data


def unpack(data: bytes) -> dict[str, Any]:
    value = msgpack.unpackb(data, raw=False, strict_map_key=False)
    if not isinstance(value, dict):
        raise ValueError("checkpoint is not a map")
    return value


@dataclass(frozen=True, slots=True)
class Outbound:
    """A message a processor wants published."""

    topic: faust.TopicT
    value: bytes
    key: bytes | None = None
    partition: int | None = None


class PartitionProcessor(Protocol):
    """The state of one stage for one input partition."""

    @property
    def applied_offset(self) -> int:
        """The last input offset taken into the state (-1: none)."""

    @property
    def replay_from(self) -> int:
        """The first offset a restarted worker must read again to rebuild the state."""

    def begin(self, offset: int) -> None:
        """Start from nothing at ``offset`` (no checkpoint exists)."""

    def process(self, value: bytes, offset: int, replaying: bool) -> list[Outbound] | None:
        """Take one message; returns what to publish when windows closed (then a checkpoint is due), else None.

        ``replaying`` is true for messages the checkpoint already covers (they are read
        again only to rebuild open windows), so side effects such as learning must not
        be repeated.
        """

    def checkpoint(self) -> dict[str, bytes]:
        """Table entries to write, by key suffix; the entry ``""`` is the one :meth:`restore` starts from."""


ProcessorFactory = Callable[[int, Callable[[str], bytes | None]], PartitionProcessor]
"""``factory(partition, read)`` builds a processor, restoring it from ``read(suffix)`` when a checkpoint exists."""


class CheckpointedStage:
    """One Faust agent over a source topic, with per-partition processors and their checkpoints."""

    def __init__(
        self,
        app: faust.App,
        name: str,
        source: faust.TopicT,
        partitions: int,
        factory: ProcessorFactory,
        replay_timeout_s: float = 120.0,
    ) -> None:
        self.app = app
        self.name = name
        self.source = source
        self.factory = factory
        self.replay_timeout_s = replay_timeout_s
        self.table = app.Table(
            f"{name}-checkpoints",
            key_type=bytes,
            value_type=bytes,
            partitions=partitions,
            help=f"{name}: per input partition, the checkpoint its windows are rebuilt from",
        )
        # Checkpoints are msgpack already; before the changelog topic is made, so it carries them as they are.
        collection = cast(Collection, self.table)
        collection.key_serializer = "raw"
        collection.value_serializer = "raw"
        self._processors: dict[int, PartitionProcessor] = {}
        self._next: dict[int, int] = {}
        self._restored_through: dict[int, int] = {}
        self.published = 0
        app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]  # mode's stub wants a keyword-only signal

        async def run(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
            async for event in stream.events():
                await self._handle(event)
                yield None

        self.agent = app.agent(source, name=name)(run)

    async def _on_revoked(self, sender: Any, revoked: set[TP], **kwargs: Any) -> None:
        topic = self.source.get_topic_name()
        for tp in revoked:
            if tp.topic == topic:
                # Another worker takes the partition over from its checkpoint; ours is stale from now on.
                self._processors.pop(tp.partition, None)
                self._next.pop(tp.partition, None)

    def _key(self, partition: int, suffix: str = "") -> bytes:
        return f"{partition}{suffix}".encode()

    async def _handle(self, event: EventT[bytes]) -> None:
        message = event.message
        partition, offset = message.partition, message.offset
        processor = self._processors.get(partition)
        if processor is None:
            processor = await self._open(partition, offset)
        if offset < self._next[partition]:
            return  # before the replay point, or already read again while catching up
        await self._apply(partition, processor, message.value, offset)

    async def _open(self, partition: int, offset: int) -> PartitionProcessor:
        found = self.table.get(self._key(partition))
        processor = self.factory(partition, lambda suffix: self.table.get(self._key(partition, suffix)))
        self._processors[partition] = processor
        if found is None:
            processor.begin(offset)
            self._next[partition] = offset
            self._write_checkpoint(partition, processor)
            return processor
        self._restored_through[partition] = processor.applied_offset
        start = processor.replay_from
        self._next[partition] = start
        log.info(
            "restored checkpoint",
            stage=self.name,
            partition=partition,
            replay_from=start,
            applied=processor.applied_offset,
            first_delivered=offset,
        )
        if start < offset:
            await self._catch_up(partition, processor, start, offset)
        return processor

    async def _apply(self, partition: int, processor: PartitionProcessor, value: bytes | None, offset: int) -> None:
        replaying = offset <= self._restored_through.get(partition, -1)
        outputs = processor.process(value or b"", offset, replaying)
        self._next[partition] = offset + 1
        if outputs is None:
            return
        if outputs:
            futures = [await o.topic.send(key=o.key, value=o.value, partition=o.partition) for o in outputs]
            await asyncio.gather(*futures)
            self.published += len(outputs)
        # While re-reading what the restored checkpoint covers, a newer checkpoint would
        # claim state (a miner, say) the processor only has as of that checkpoint.
        if not replaying:
            self._write_checkpoint(partition, processor)

    def _write_checkpoint(self, partition: int, processor: PartitionProcessor) -> None:
        entries = processor.checkpoint()
        # The main entry goes last: it names the others, which must be there before it.
        for suffix in sorted(entries, key=lambda s: s == ""):
            self.table[self._key(partition, suffix)] = entries[suffix]

    async def _catch_up(self, partition: int, processor: PartitionProcessor, start: int, stop: int) -> None:
        """Read ``[start, stop)`` of the partition again and feed it to the processor."""
        servers = [f"{url.host}:{url.port or 9092}" for url in self.app.conf.broker]
        consumer = AIOKafkaConsumer(
            bootstrap_servers=servers,
            enable_auto_commit=False,
            fetch_max_bytes=MAX_FETCH_BYTES,
            max_partition_fetch_bytes=MAX_FETCH_BYTES,
        )
        tp = TopicPartition(self.source.get_topic_name(), partition)
        deadline = time.monotonic() + self.replay_timeout_s
        await consumer.start()
        try:
            consumer.assign([tp])
            consumer.seek(tp, start)
            while self._next[partition] < stop:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{self.name}: replay of partition {partition} from {start} did not reach {stop}"
                    )
                records = (await consumer.getmany(tp, timeout_ms=500)).get(tp, [])
                for record in records:
                    if record.offset >= stop:
                        break
                    if record.offset >= self._next[partition]:
                        await self._apply(partition, processor, record.value, record.offset)
                if not records and await consumer.position(tp) >= stop:
                    break  # the rest of the range is gone (retention) or was never records
        finally:
            await consumer.stop()
        self._next[partition] = max(self._next[partition], stop)
        log.info("replayed input", stage=self.name, partition=partition, start=start, stop=stop)
