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
   marker names; whenever a delivered offset is past the next one needed (the
   checkpoint lags the group's committed offset, or Faust dropped buffered messages
   after a rebalance), re-reads the missing range with a plain consumer first.

A series state remembers the start of the latest window it took in and skips any
window again (a re-read, a producer's retry): nothing is learned twice. What a re-read
finds is published again under the same deterministic ids: at-least-once, never lost.
"""

from __future__ import annotations

import asyncio
import hashlib
import pickle
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, Generic, Protocol, TypeVar, cast

import faust
import msgpack
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiops_common.schemas import FeatureBatch, SchemaError
from faust.tables.base import Collection
from faust.types import TP, EventT

__all__ = ["FeatureStage", "SeriesPartition", "SeriesStates", "code_fingerprint", "dump_state", "load_state"]

log = structlog.get_logger(__name__)

R = TypeVar("R")
S = TypeVar("S")

MAX_FETCH_BYTES = 64 * 1024 * 1024


def code_fingerprint(*modules: ModuleType) -> str:
    """Hash of the source of the modules whose objects a checkpoint pickles.

    Pickles hold objects' private attributes: a state written by other code may load and
    then fail. A checkpoint or model carries this, and other code does not load it.
    """
    digest = hashlib.sha256()
    for module in sorted(modules, key=lambda m: m.__name__):
        digest.update(module.__name__.encode())
        digest.update(Path(str(module.__file__)).read_bytes())
    return digest.hexdigest()[:16]


def dump_state(state: object, fingerprint: str) -> bytes:
    return zlib.compress(pickle.dumps((fingerprint, state), protocol=5), 1)


def load_state(blob: bytes, fingerprint: str) -> Any:
    """The state in ``blob``, or None when other code wrote it (or it is unreadable)."""
    try:
        written_by, state = pickle.loads(zlib.decompress(blob))
    except Exception:  # a state that will not even load is a state to start again without
        return None
    return state if written_by == fingerprint else None


class SeriesPartition(Protocol[R]):
    """One stage's per-series state for one ``features`` partition; every method runs in a worker thread."""

    def process(self, batch: FeatureBatch) -> list[R]:
        """Take a batch's rows in; what to publish."""

    def changed(self) -> dict[str, bytes]:
        """Serialized states of the series changed since the last call, by series id."""

    def restore(self, states: Mapping[str, bytes]) -> None:
        """Start from checkpointed states (as :meth:`changed` wrote them)."""

    def series_ids(self) -> list[str]: ...


class SeriesStates(Generic[S]):
    """The per-series states of one partition and which changed since the last checkpoint.

    Subclasses say what a state is (``state_type``) and which code writes it
    (``fingerprint``), and mark a series changed in ``_changed`` when they touch it.
    """

    state_type: type[S]
    fingerprint: str

    def __init__(self) -> None:
        self.states: dict[str, S] = {}
        self._changed: set[str] = set()

    def changed(self) -> dict[str, bytes]:
        out = {ident: dump_state(self.states[ident], self.fingerprint) for ident in self._changed}
        self._changed.clear()
        return out

    def restore(self, states: Mapping[str, bytes]) -> None:
        for ident, blob in states.items():
            state = load_state(blob, self.fingerprint)
            if isinstance(state, self.state_type):
                self.states[ident] = state
            else:
                log.warning("checkpointed state written by other code; the series starts again", series=ident)

    def series_ids(self) -> list[str]:
        return list(self.states)


class FeatureStage(Generic[R]):
    """One Faust agent over ``features`` with per-partition series state and its checkpoints."""

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
        self.app = app
        self.name = name
        self.source = source
        self.factory = factory
        self.emit = emit
        self.checkpoint_interval_s = checkpoint_interval_s
        self.replay_timeout_s = replay_timeout_s
        self.table = app.Table(
            f"{name}-state",
            key_type=bytes,
            value_type=bytes,
            partitions=partitions,
            help=f"{name}: per-series state and, per input partition, the offset it covers",
        )
        # Entries are already bytes; set before the changelog topic is made, so it carries them as they are.
        collection = cast(Collection, self.table)
        collection.key_serializer = "raw"
        collection.value_serializer = "raw"
        self._parts: dict[int, SeriesPartition[R]] = {}
        self._applied: dict[int, int] = {}
        self._checkpointed_at: dict[int, float] = {}
        self.undecodable = 0
        self.failed = 0
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
                # The next owner starts from the checkpoint; what we hold is stale from now on.
                self._parts.pop(tp.partition, None)
                self._applied.pop(tp.partition, None)

    async def _handle(self, event: EventT[bytes]) -> None:
        message = event.message
        partition, offset = message.partition, message.offset
        part = self._parts.get(partition)
        if part is None:
            part = await self._open(partition, offset)
        if offset <= self._applied[partition]:
            return  # covered by the checkpoint, or already read again while catching up
        if offset > self._applied[partition] + 1:
            # After a (re)start or rebalance Faust can drop buffered messages and hand over a later
            # offset (faust-streaming #216/#221/#253), and after a restore the checkpoint may lag
            # the committed offset: either way, read the missing range before going on.
            await self._catch_up(partition, part, self._applied[partition] + 1, offset)
        await self._apply(partition, part, message.value, offset)
        if time.monotonic() - self._checkpointed_at.get(partition, 0.0) >= self.checkpoint_interval_s:
            await self._checkpoint(partition, part)

    def _process(self, part: SeriesPartition[R], value: bytes | None) -> list[R]:
        try:
            batch = FeatureBatch.decode(value or b"")
        except SchemaError as exc:
            self.undecodable += 1
            log.error("skipping undecodable feature batch", stage=self.name, error=str(exc))
            return []
        try:
            return part.process(batch)
        except Exception:
            # A batch that breaks a detector must not stall its partition for good (the agent would crash
            # on it again after every restart): logged with its traceback and skipped.
            self.failed += 1
            log.exception("feature batch failed; skipped", stage=self.name, batch=batch.id)
            return []

    async def _apply(self, partition: int, part: SeriesPartition[R], value: bytes | None, offset: int) -> None:
        found = await asyncio.to_thread(self._process, part, value)
        if found:
            await self.emit(found)
        self._applied[partition] = offset

    async def _checkpoint(self, partition: int, part: SeriesPartition[R]) -> None:
        """Write changed series, then the marker naming them (same changelog partition: in that order)."""
        states = await asyncio.to_thread(part.changed)
        for sid, blob in states.items():
            self.table[f"s/{sid}".encode()] = blob
        marker = {"offset": self._applied[partition], "series": part.series_ids()}
        self.table[f"p/{partition}".encode()] = msgpack.packb(marker, use_bin_type=True)
        self._checkpointed_at[partition] = time.monotonic()

    async def _open(self, partition: int, offset: int) -> SeriesPartition[R]:
        part = self.factory(partition)
        self._parts[partition] = part
        found = self.table.get(f"p/{partition}".encode())
        if found is None:
            log.info("no checkpoint", stage=self.name, partition=partition, first_delivered=offset)
            self._applied[partition] = offset - 1
            return part
        marker = msgpack.unpackb(found, raw=False)
        states = {sid: blob for sid in marker["series"] if (blob := self.table.get(f"s/{sid}".encode())) is not None}
        await asyncio.to_thread(part.restore, states)
        covered = int(marker["offset"])
        self._applied[partition] = covered
        self._checkpointed_at[partition] = time.monotonic()
        log.info(
            "restored checkpoint",
            stage=self.name,
            partition=partition,
            series=len(states),
            covered=covered,
            first_delivered=offset,
        )
        return part

    async def _catch_up(self, partition: int, part: SeriesPartition[R], start: int, stop: int) -> None:
        """Read ``[start, stop)`` of the partition again: what the group committed but the checkpoint misses."""
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
            while self._applied[partition] < stop - 1:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.name}: re-read of partition {partition} from {start} missed {stop}")
                records = (await consumer.getmany(tp, timeout_ms=500)).get(tp, [])
                for record in records:
                    if record.offset >= stop:
                        break
                    if record.offset > self._applied[partition]:
                        await self._apply(partition, part, record.value, record.offset)
                if not records and await consumer.position(tp) >= stop:
                    break  # the rest is gone (retention) or was never records
        finally:
            await consumer.stop()
        self._applied[partition] = max(self._applied[partition], stop - 1)
        log.info("re-read input", stage=self.name, partition=partition, start=start, stop=stop)
