"""Restart-safe windowed processors: a small checkpoint per input partition, and a replay of the input since it."""

from __future__ import annotations

import asyncio
import gc
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import faust
import structlog
from aiops_common.agent_loop import AgentMeter
from aiops_common.partition_replay import ReplayingStage, pack, unpack
from faust.types import TP

__all__ = ["CheckpointedStage", "Outbound", "PartitionProcessor", "ProcessorFactory"]

log = structlog.get_logger(__name__)


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

    @property
    def undecodable(self) -> int:
        """How many messages it skipped as undecodable (they are counted as drops in ``/metrics``)."""

    def begin(self, offset: int) -> None:
        """Start from nothing at ``offset`` (no checkpoint exists)."""

    def process(self, value: bytes, offset: int, replaying: bool) -> list[Outbound] | None:
        """Take one message; returns what to publish when windows closed (then a checkpoint is due), else None.

        ``replaying`` is true for messages the checkpoint already covers (they are read
        again only to rebuild open windows), so side effects such as learning must not
        be repeated.
        """

    def idle(self, idle_ms: int) -> list[Outbound] | None:
        """Advance event time ``idle_ms`` past the latest input; like :meth:`process` when windows close.

        Must change nothing when it closes nothing, and give the same result when applied
        again to the state it produced (a restarted worker may repeat it).
        """

    def checkpoint(self) -> dict[str, bytes]:
        """Table entries to write, by key suffix; the entry ``""`` is the one :meth:`restore` starts from."""


ProcessorFactory = Callable[[int, Callable[[str], bytes | None]], PartitionProcessor]
"""``factory(partition, read)`` builds a processor, restoring it from ``read(suffix)`` when a checkpoint exists."""


@contextmanager
def _collection_paused() -> Iterator[None]:
    """No cyclic garbage collection inside: for one message's processing, which is synchronous.

    A message decodes into thousands of short-lived containers. A collection while they
    are alive promotes them all to the oldest generation, and the full collections that
    follow walk every series the partitions hold: at 100k series, 40% of the time went
    there. Freed by reference counting at the end of the message, they are never promoted.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@dataclass(slots=True)
class _InFlight:
    """Messages sent for one close of a partition's windows, and the checkpoint due once the broker has them."""

    acked: asyncio.Future[Any]
    checkpoint: dict[str, bytes] | None
    """None: the close replayed what an earlier checkpoint covers (nothing to write)."""


_IDLE = ":idle-flush"
"""Table key suffix of a partition's latest idle flush (``after`` offset, ``idle_ms``); processors use others."""


class CheckpointedStage(ReplayingStage[PartitionProcessor]):
    """One Faust agent over a source topic, with per-partition processors and their checkpoints.

    A stage's state for one input partition (open windows, counter baselines, a span
    index, a log-template miner) is too large to write to a changelog on every
    message, but it is a pure function of a small checkpoint plus the input messages
    from the checkpoint's ``replay_from`` offset on. So, on top of the re-reading that
    :class:`~aiops_common.partition_replay.ReplayingStage` does (from ``replay_from`` on
    the first message after a (re)start, and any offset range Faust skips), this stage

    1. feeds each message of the partition to the stage's :class:`PartitionProcessor`;
    2. when the processor closes windows, sends what it produced and takes the
       checkpoint, but writes it to the table (keyed by input partition) only once the
       broker has acknowledged those messages and every earlier one of the partition.
       The handler does not wait for the acknowledgement: the next messages are
       processed while the broker takes the last ones in (at most ``max_in_flight``
       closes unacknowledged). A send that fails stops the partition's checkpoints
       there, and the next message raises;
    3. when a partition's input has been quiet for ``idle_after_s`` of wall-clock time,
       lets the processor advance its event time by that much (a timer), so the last
       windows of a silent partition close too. That decision is not a function of the
       input, so it is written to the table (``after`` offset, idle time) and
       acknowledged before anything it closed is published, and a restarted worker
       applies it again right after replaying that offset. Before the first idle
       flush of a quiet spell, the partition's input is read past the last offset
       taken: records Faust skipped at the end of a rebalance have no later record
       to reveal the gap, and would be late once their windows were closed. A partition that is idle
       when a worker starts is opened from its checkpoint by the same timer.

    A worker killed between publishing and checkpointing publishes the same rows
    again: delivery is at-least-once and consumers deduplicate; nothing is lost, and
    no window is counted twice into one row.
    """

    table_suffix = "checkpoints"
    table_help = "per input partition, the checkpoint its windows are rebuilt from"

    def __init__(
        self,
        app: faust.App,
        name: str,
        source: faust.TopicT,
        partitions: int,
        factory: ProcessorFactory,
        idle_after_s: float | None = None,
        replay_timeout_s: float = 120.0,
        max_in_flight: int = 8,
    ) -> None:
        super().__init__(app, name, source, partitions, replay_timeout_s)
        self.factory = factory
        self.idle_after_s = idle_after_s
        self.max_in_flight = max_in_flight
        # Per partition, in the order sent: closes whose messages the broker has not acknowledged yet.
        self._in_flight: dict[int, deque[_InFlight]] = {}
        self._send_failure: BaseException | None = None
        self._restored_through: dict[int, int] = {}
        self._last_input: dict[int, float] = {}
        # Per partition, the quiet spell (its last input's time) whose tail was already read once.
        self._tail_checked: dict[int, float] = {}
        self._pending_idle: dict[int, tuple[int, int]] = {}
        # The agent and the idle timer both move a processor's state; one at a time.
        self._lock = asyncio.Lock()
        self.published = 0
        self.meter = AgentMeter(name)
        app.on_before_shutdown.connect(self._on_shutdown)  # type: ignore[arg-type]  # mode's stub wants a keyword-only signal
        if idle_after_s is not None:
            app.timer(min(1.0, idle_after_s / 4), name=f"{name}_idle_flush")(self._flush_idle)

    async def _on_revoked(self, sender: Any, revoked: set[TP], **kwargs: Any) -> None:
        async with self._lock:
            # The checkpoints of what was sent are written before the next owner (maybe this worker) reads them.
            topic = self.source.get_topic_name()
            await self.settle({tp.partition for tp in revoked if tp.topic == topic})
            await super()._on_revoked(sender, revoked, **kwargs)

    async def _on_shutdown(self, sender: Any, **kwargs: Any) -> None:
        # Before the producer's last flush: the checkpoints of what was sent go out with it.
        await self.settle()

    def forget(self, partition: int) -> None:
        super().forget(partition)
        self._last_input.pop(partition, None)
        self._tail_checked.pop(partition, None)
        self._pending_idle.pop(partition, None)
        self._in_flight.pop(partition, None)

    def _key(self, partition: int, suffix: str = "") -> bytes:
        return f"{partition}{suffix}".encode()

    def _read(self, partition: int, suffix: str = "") -> bytes | None:
        value: bytes | None = self.table.get(self._key(partition, suffix))
        return value

    def _put(self, partition: int, suffix: str, value: bytes) -> Awaitable[Any]:
        """Set a table entry; the changelog partition is the input partition, named (the idle timer has no event)."""
        key = self._key(partition, suffix)
        self.table.data[key] = value
        return self.table.send_changelog(partition, key, value)

    async def handle(self, partition: int, offset: int, value: bytes | None) -> None:
        async with self._lock:
            self._last_input[partition] = time.monotonic()
            await super().handle(partition, offset, value)

    def create(self, partition: int) -> PartitionProcessor:
        return self.factory(partition, lambda suffix: self._read(partition, suffix))

    async def restore(self, partition: int, processor: PartitionProcessor, delivered: int | None) -> int:
        self._last_input[partition] = time.monotonic()
        if self._read(partition) is None:
            assert delivered is not None, "only a delivered message opens a partition without a checkpoint"
            processor.begin(delivered)
            self._write_checkpoint(partition, processor)
            return delivered
        self._restored_through[partition] = processor.applied_offset
        idle = self._read(partition, _IDLE)
        if idle is not None:
            intent = unpack(idle)
            # Older than the checkpoint: the checkpoint already holds what that flush closed.
            if intent["after"] >= processor.applied_offset:
                self._pending_idle[partition] = (int(intent["after"]), int(intent["idle_ms"]))
        log.info(
            "restored checkpoint",
            stage=self.name,
            partition=partition,
            replay_from=processor.replay_from,
            applied=processor.applied_offset,
            first_delivered=delivered,
            pending_idle_flush=self._pending_idle.get(partition),
        )
        return processor.replay_from

    async def take(self, partition: int, processor: PartitionProcessor, value: bytes | None, offset: int) -> None:
        pending = self._pending_idle.get(partition)
        if pending is not None and offset > pending[0]:
            await self._redo_idle(partition, processor)
        replaying = offset <= self._restored_through.get(partition, -1)
        skipped = processor.undecodable
        with _collection_paused(), self.meter.timed():
            outputs = processor.process(value or b"", offset, replaying)
        if not replaying:
            self.meter.took()
            if processor.undecodable > skipped:
                self.meter.dropped("undecodable", f"offset {offset} of partition {partition}")
        if outputs is None:
            return
        # While re-reading what the restored checkpoint covers, a newer checkpoint would
        # claim state (a miner, say) the processor only has as of that checkpoint.
        await self._publish(partition, outputs, None if replaying else processor.checkpoint())

    async def _publish(self, partition: int, outputs: list[Outbound], checkpoint: dict[str, bytes] | None) -> None:
        """Send ``outputs``; ``checkpoint`` is written once they and the partition's earlier sends are acknowledged."""
        self._raise_send_failure()
        futures = [await o.topic.send(key=o.key, value=o.value, partition=o.partition) for o in outputs]
        self.published += len(outputs)
        self.meter.sent(len(outputs))
        queue = self._in_flight.setdefault(partition, deque())
        entry = _InFlight(asyncio.gather(*futures), checkpoint)
        queue.append(entry)
        entry.acked.add_done_callback(lambda _: self._write_acknowledged(partition, queue))
        while sum(len(q) for q in self._in_flight.values()) > self.max_in_flight:
            await asyncio.wait([q[0].acked for q in self._in_flight.values() if q], return_when=asyncio.FIRST_COMPLETED)
            self._raise_send_failure()

    def _write_acknowledged(self, partition: int, queue: deque[_InFlight]) -> None:
        """Write the checkpoints of the partition's closes acknowledged so far, oldest first; stop at a failed one."""
        if self._in_flight.get(partition) is not queue:
            return  # the partition was given up; its next owner replays from the checkpoint it finds
        while queue and queue[0].acked.done():
            acked = queue[0].acked
            failure = acked.exception() if not acked.cancelled() else asyncio.CancelledError()
            if failure is not None:
                # What it sent may be lost: no later checkpoint of this partition may claim it.
                if self._send_failure is None:
                    log.error("publishing failed", stage=self.name, partition=partition, error=repr(failure))
                self._send_failure = failure
                return
            entry = queue.popleft()
            if entry.checkpoint is not None:
                self._write_entries(partition, entry.checkpoint)
        if not queue:
            del self._in_flight[partition]

    async def settle(self, partitions: set[int] | None = None, timeout_s: float = 30.0) -> None:
        """Wait for the acknowledgements of the partitions' sends (all: None), writing their checkpoints."""
        pending = [
            entry.acked
            for partition, queue in self._in_flight.items()
            if partitions is None or partition in partitions
            for entry in queue
        ]
        if pending:
            await asyncio.wait(pending, timeout=timeout_s)

    def _raise_send_failure(self) -> None:
        if self._send_failure is not None:
            raise RuntimeError(f"{self.name}: publishing failed, checkpoints stopped") from self._send_failure

    def _write_checkpoint(self, partition: int, processor: PartitionProcessor) -> None:
        self._write_entries(partition, processor.checkpoint())

    def _write_entries(self, partition: int, entries: dict[str, bytes]) -> None:
        # The main entry goes last: it names the others, which must be there before it.
        for suffix in sorted(entries, key=lambda s: s == ""):
            self._put(partition, suffix, entries[suffix])

    async def _redo_idle(self, partition: int, processor: PartitionProcessor) -> None:
        """Apply the idle flush a previous worker decided at the offset the processor has now reached."""
        _, idle_ms = self._pending_idle.pop(partition)
        with _collection_paused():
            outputs = processor.idle(idle_ms)
        if outputs is not None:
            await self._publish(partition, outputs, processor.checkpoint())

    async def _flush_idle(self) -> None:
        """Timer: close the windows of partitions whose input has been quiet for ``idle_after_s``."""
        if self.app.rebalancing or self.idle_after_s is None:
            return
        async with self._lock:
            await self._open_idle_partitions()
            now = time.monotonic()
            for partition, processor in list(self.states.items()):
                if partition in self._pending_idle and processor.applied_offset >= self._pending_idle[partition][0]:
                    await self._redo_idle(partition, processor)
                quiet_s = now - self._last_input.get(partition, now)
                if quiet_s < self.idle_after_s:
                    continue
                if await self._read_skipped_tail(partition, processor):
                    continue  # it was not quiet: records waited that Faust had not delivered
                idle_ms = int(quiet_s * 1000)
                with _collection_paused():
                    outputs = processor.idle(idle_ms)
                if outputs is None:
                    continue
                # Durable before anything it closed is out: a restarted worker must close the same windows.
                await self._put(partition, _IDLE, pack({"after": processor.applied_offset, "idle_ms": idle_ms}))
                await self._publish(partition, outputs, processor.checkpoint())
                log.info("closed idle windows", stage=self.name, partition=partition, idle_s=round(quiet_s, 1))

    async def _read_skipped_tail(self, partition: int, processor: PartitionProcessor) -> bool:
        """Before a partition's first idle flush of a quiet spell, read what its input holds past the last offset
        taken; True when there was something.

        Faust can skip records fetched while a rebalance's recovery ends (see ``ReplayingStage``). A gap is
        found when a later record is delivered, but when the skipped records are the last ones sent, none
        comes: the partition looks quiet, and an idle flush would close the windows they belong in, so that
        they would be late once read. Checked once per quiet spell (a read opens a consumer).
        """
        spell = self._last_input.get(partition)
        if spell is None or self._tail_checked.get(partition) == spell:
            return False
        self._tail_checked[partition] = spell
        if not await self.read_undelivered_tail(partition, processor):
            return False
        self._last_input[partition] = time.monotonic()
        return True

    async def _open_idle_partitions(self) -> None:
        """Open assigned partitions that have a checkpoint but no input since this worker started."""
        topic = self.source.get_topic_name()
        for tp in self.app.consumer.assignment():
            if tp.topic != topic or tp.partition in self.states or self._read(tp.partition) is None:
                continue
            processor = await self.open_partition(tp.partition, None)
            await self.replay(tp.partition, processor, self.next_offset[tp.partition], None)
