"""Restart-safe state of a ``features`` consumer: per-series checkpoints in a changelog-backed table, plus a re-read.

A detection stage keeps one object per series (a cascade, a forecaster): too large
to write on every message, small enough to write a few times a minute. The driver

1. hands every message of a partition to the stage's :class:`SeriesPartition` in a
   worker thread, so the event loop keeps heartbeating while models learn, and
   publishes what it found (``emit``, which waits for the broker's acknowledgement);
2. every ``checkpoint_interval_s`` writes the series states that changed to a
   changelog-backed Faust table, one entry per series, then the partition's marker:
   the input offset they cover and the series it holds. The table is co-partitioned
   with ``features``, so whichever worker is assigned a partition recovers its state;
3. on the first message of a partition after a (re)start, restores the states the
   marker names; the missing input, after the marker's offset and wherever Faust
   skips offsets, is re-read by :class:`~aiops_common.partition_replay.ReplayingStage`;
4. every ``CATCH_UP_S`` reads the tail of an assigned partition that nothing was delivered
   from for that long while its end is past what the state took in
   (:meth:`~aiops_common.partition_replay.ReplayingStage.read_undelivered_tail`). Faust can drop records
   it fetched while a rebalance's recovery ended; the re-read of step 3 finds such a gap
   when a later record is delivered, but at the end of the input (a quiet stream, a worker
   restarted after the last batch) none comes, and the batch would wait for the next one.

A series state remembers the start of the latest window it took in and skips any
window again (a re-read, a producer's retry): nothing is learned twice. What a re-read
finds is published again under the same deterministic ids: at-least-once, never lost.
"""

from __future__ import annotations

import asyncio
import math
import pickle
import time
import zlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Generic, Protocol, TypeVar

import faust
import structlog
from aiops_common.agent_loop import AGENT_DROPPED, AgentMeter
from aiops_common.partition_replay import ReplayingStage, pack, unpack
from aiops_common.schemas import FeatureBatch, SchemaError

__all__ = ["CATCH_UP_S", "FeatureStage", "SeriesPartition", "SeriesStates", "dump_state", "load_entry", "load_state"]

log = structlog.get_logger(__name__)

R = TypeVar("R")

CATCH_UP_S = 5.0
"""How long an assigned partition may go without a delivery before its tail is checked and read (step 4)."""


class WindowedState(Protocol):
    """A series state that remembers the start of the latest window it took in."""

    last_start_ms: int


S = TypeVar("S", bound=WindowedState)


def dump_state(state: object, fingerprint: str, heard_ms: float | None = None) -> bytes:
    """``state`` as a checkpoint entry; ``heard_ms``: the partition's event time when its series last had a row."""
    return zlib.compress(pickle.dumps((fingerprint, state, heard_ms), protocol=5), 1)


def load_entry(blob: bytes, fingerprint: str) -> tuple[Any, float | None]:
    """The state in ``blob`` and when its series was last heard, or (None, None) when other code wrote it.

    An entry from before ``heard_ms`` was written (a pair) loads with it unknown.
    """
    try:
        written_by, state, *heard = pickle.loads(zlib.decompress(blob))
    except Exception:  # a state that will not even load is a state to start again without
        return None, None
    if written_by != fingerprint:
        return None, None
    return state, heard[0] if heard else None


def load_state(blob: bytes, fingerprint: str) -> Any:
    """The state in ``blob``, or None when other code wrote it (or it is unreadable)."""
    return load_entry(blob, fingerprint)[0]


class SeriesPartition(Protocol[R]):
    """One stage's per-series state for one ``features`` partition; every method runs in a worker thread."""

    def process(self, batch: FeatureBatch) -> list[R]:
        """Take a batch's rows in; what to publish."""

    def changed(self) -> dict[str, bytes | None]:
        """Serialized states of the series changed since the last call, by series id; None for one forgotten."""

    def restore(self, states: Mapping[str, bytes]) -> None:
        """Start from checkpointed states (as :meth:`changed` wrote them)."""

    def series_ids(self) -> list[str]: ...


class SeriesStates(Generic[S]):
    """The per-series states of one partition, which changed since the last checkpoint, and when each was heard.

    Subclasses say what a state is (``state_type``) and which code writes it
    (``fingerprint``), and mark a series changed in ``_changed`` when they touch it.
    """

    state_type: type[S]
    fingerprint: str

    def __init__(self) -> None:
        self.states: dict[str, S] = {}
        self._changed: set[str] = set()
        self._forgotten: set[str] = set()
        # Per series: its latest window start when last looked at, and the partition's event time then.
        self._heard: dict[str, tuple[int, float]] = {}
        self._newest_start_ms = -math.inf
        self._swept_ms = -math.inf

    def changed(self) -> dict[str, bytes | None]:
        out: dict[str, bytes | None] = {ident: None for ident in self._forgotten if ident not in self.states}
        for ident in self._changed:
            heard = self._hear(ident)
            out[ident] = self.dump(ident, None if heard is None else heard[1])
        self._changed.clear()
        self._forgotten.clear()
        return out

    def dump(self, ident: str, heard_ms: float | None) -> bytes:
        """Series ``ident``'s checkpoint entry (``dump_state``); a subclass that keeps part of a state elsewhere
        puts it back for the dump."""
        return dump_state(self.states[ident], self.fingerprint, heard_ms)

    def _hear(self, ident: str) -> tuple[int, float] | None:
        """Stamp ``ident`` with the partition's event time if it has had a window since it was last stamped.

        A series is stamped when it is checkpointed or swept, whichever comes first
        after its row: later than the row by at most that, never earlier. A model swap
        touches a series without a window, and does not count as hearing from it.
        """
        start = self.states[ident].last_start_ms
        heard = self._heard.get(ident)
        if (heard is None or heard[0] != start) and self._newest_start_ms > -math.inf:
            heard = self._heard[ident] = (start, self._newest_start_ms)
        return heard

    def forget_idle(self, batch_start_ms: int, idle_ms: float) -> list[str]:
        """Forget every series the partition has not heard from for ``idle_ms`` of the partition's event time.

        The event time is the newest window start of the batches so far
        (``batch_start_ms``: the newest of this one), so a stopped pipeline forgets
        nothing. A series is measured by the event time when it last had a window, not
        by its own windows' starts: a backfilled series, windowed days behind the live
        ones on its own clock, is kept while it keeps reporting. Looked at once per
        ``idle_ms / 24`` of event time; 0 never forgets. The next checkpoint deletes the
        forgotten series' entries; one that comes back starts again. Returns the series
        ids dropped.
        """
        self._newest_start_ms = max(self._newest_start_ms, batch_start_ms)
        if idle_ms <= 0 or self._newest_start_ms - self._swept_ms < idle_ms / 24:
            return []
        self._swept_ms = self._newest_start_ms
        cutoff = self._newest_start_ms - idle_ms
        gone = [ident for ident in self.states if (heard := self._hear(ident)) is not None and heard[1] < cutoff]
        for ident in gone:
            del self.states[ident]
            del self._heard[ident]
            self._changed.discard(ident)
            self._forgotten.add(ident)
        return gone

    def restore(self, states: Mapping[str, bytes]) -> None:
        for ident, blob in states.items():
            state, heard_ms = load_entry(blob, self.fingerprint)
            if isinstance(state, self.state_type):
                self.states[ident] = state
                if heard_ms is not None:
                    self._heard[ident] = (state.last_start_ms, heard_ms)
                # else: a checkpoint from before this was kept; the first sweep stamps it, a full horizon again
            else:
                log.warning("checkpointed state written by other code; the series starts again", series=ident)

    def series_ids(self) -> list[str]:
        return list(self.states)


class FeatureStage(ReplayingStage[SeriesPartition[R]]):
    """One Faust agent over ``features`` with per-partition series state and its checkpoints."""

    table_suffix = "state"
    table_help = "per-series state and, per input partition, the offset it covers"

    def __init__(
        self,
        app: faust.App,
        name: str,
        source: faust.TopicT,
        partitions: int,
        factory: Callable[[int], SeriesPartition[R]],
        emit: Callable[[list[R]], Awaitable[None]],
        checkpoint_interval_s: float,
        replay_timeout_s: float,
    ) -> None:
        super().__init__(app, name, source, partitions, replay_timeout_s)
        self.factory = factory
        self.emit = emit
        self.checkpoint_interval_s = checkpoint_interval_s
        self._checkpointed_at: dict[int, float] = {}
        self.undecodable = 0
        self.failed = 0
        self.meter = AgentMeter(name)
        # Deliveries and the tail reads of the catch-up timer take a partition's records in one at a time.
        self._lock = asyncio.Lock()
        self._started = time.monotonic()
        self._delivered_at: dict[int, float] = {}
        app.timer(CATCH_UP_S, name=f"{name}-catch_up")(self.catch_up)

    async def handle(self, partition: int, offset: int, value: bytes | None) -> None:
        async with self._lock:
            self._delivered_at[partition] = time.monotonic()
            await super().handle(partition, offset, value)

    async def catch_up(self) -> None:
        """Timer: read the tail of every assigned partition that went ``CATCH_UP_S`` without a delivery while its
        end is past the state's next offset (a record Faust fetched and dropped, with none after it)."""
        if getattr(self.app, "rebalancing", False) or getattr(self.app, "in_recovery", False):
            return  # the table may not hold the checkpoints yet; the next tick looks again
        try:
            await self._read_tails()
        except Exception as exc:  # the broker away, a re-read timing out: deliveries go on, the next tick tries again
            log.warning("input tails not read", stage=self.name, error=f"{type(exc).__name__}: {exc}")

    async def _read_tails(self) -> None:
        topic = self.source.get_topic_name()
        now = time.monotonic()
        quiet = [
            tp.partition
            for tp in self.app.consumer.assignment()
            if tp.topic == topic and now - self._delivered_at.get(tp.partition, self._started) >= CATCH_UP_S
        ]
        for partition in quiet:
            async with self._lock:
                state = self.states.get(partition)
                if state is None:
                    if self.table.get(f"p/{partition}".encode()) is None:
                        continue  # no checkpoint: only a delivered record says where its input starts
                    state = await self.open_partition(partition, None)
                if await self.read_undelivered_tail(partition, state):
                    await self.after_delivery(partition, state)
                    self._delivered_at[partition] = time.monotonic()

    def create(self, partition: int) -> SeriesPartition[R]:
        return self.factory(partition)

    async def restore(self, partition: int, part: SeriesPartition[R], delivered: int | None) -> int:
        found = self.table.get(f"p/{partition}".encode())
        if found is None:
            log.info("no checkpoint", stage=self.name, partition=partition, first_delivered=delivered)
            assert delivered is not None, "only a delivered message opens a partition without a checkpoint"
            return delivered
        marker = unpack(found)
        states = {sid: blob for sid in marker["series"] if (blob := self.table.get(f"s/{sid}".encode())) is not None}
        await asyncio.to_thread(part.restore, states)
        covered = int(marker["offset"])
        self._checkpointed_at[partition] = time.monotonic()
        log.info(
            "restored checkpoint",
            stage=self.name,
            partition=partition,
            series=len(states),
            covered=covered,
            first_delivered=delivered,
        )
        return covered + 1

    def _process(self, part: SeriesPartition[R], value: bytes | None) -> list[R]:
        try:
            batch = FeatureBatch.decode(value or b"")
        except SchemaError as exc:
            self.undecodable += 1
            self.meter.dropped("undecodable", str(exc))
            return []
        try:
            return part.process(batch)
        except Exception:
            # A batch that breaks a detector must not stall its partition for good (the agent would crash
            # on it again after every restart): logged with its traceback and skipped.
            self.failed += 1
            AGENT_DROPPED.labels(self.name, "failed").inc()
            log.exception("feature batch failed; skipped", stage=self.name, batch=batch.id)
            return []

    async def take(self, partition: int, part: SeriesPartition[R], value: bytes | None, offset: int) -> None:
        self.meter.took()
        with self.meter.timed():
            found = await asyncio.to_thread(self._process, part, value)
            if found:
                await self.emit(found)
        self.meter.sent(len(found))

    async def after_delivery(self, partition: int, part: SeriesPartition[R]) -> None:
        if time.monotonic() - self._checkpointed_at.get(partition, 0.0) >= self.checkpoint_interval_s:
            await self._checkpoint(partition, part)

    async def _checkpoint(self, partition: int, part: SeriesPartition[R]) -> None:
        """Write changed series, then the marker naming them (same changelog partition: in that order)."""
        states = await asyncio.to_thread(part.changed)
        for sid, blob in states.items():
            key = f"s/{sid}".encode()
            if blob is not None:
                self._write(partition, key, blob)
            elif key in self.table.data:
                self._write(partition, key, None)  # a forgotten series: a tombstone in the changelog
        marker = {"offset": self.next_offset[partition] - 1, "series": part.series_ids()}
        self._write(partition, f"p/{partition}".encode(), pack(marker))
        self._checkpointed_at[partition] = time.monotonic()

    def _write(self, partition: int, key: bytes, value: bytes | None) -> None:
        """One table entry (None: deleted) and its changelog record, on the input's partition.

        Not ``table[key] = value``: Faust takes the changelog partition from the stream event being handled,
        and the catch-up timer checkpoints outside any (the table is co-partitioned with the input).
        """
        if value is None:
            del self.table.data[key]
        else:
            self.table.data[key] = value
        self.table.send_changelog(partition, key, value)
