"""Per-series event-time clocks beside a partition's: history sent for a new series is windowed by its own time."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from aiops_common.schemas import FeatureBatch, SeriesMeta

from aiops_stream.drops import DropReason, count_dropped
from aiops_stream.tumbling import NO_TS, TumblingWindows, WindowConfig

__all__ = ["SeriesClocks"]

_CLOCK_CAPACITY = 16
"""Series slots an own-clock engine starts with (it holds one): the partition's engine starts with 1024."""


@dataclass(slots=True)
class _Clock:
    windows: TumblingWindows
    keys: list[str]
    """The series on this clock: those that got one with the same message."""
    created: int
    """The first input offset whose samples went to this clock."""
    live_at_input: int
    """The partition's event time (latest timestamp) when the clock last took samples."""


def _clock_name(number: int) -> str:
    return f"clock{number}"


class SeriesClocks:
    """The windows of one input partition: one engine on the partition's clock, and own clocks for history.

    The partition's engine (:attr:`live`) closes windows as the partition's event time
    passes them, which is right for the series that report now: a sample behind
    every window its series has had closed is late and dropped. A series the engine has
    no sample of, whose samples come from before the open windows (history sent for
    it, a backfill), gets an engine of its own instead, whose clock follows its own
    samples only: its history is windowed by its own time while the live series keep
    theirs, as Prometheus-style stores keep time per series. The series that start
    their history in the same message share one such clock (a backfill sends its
    series in time order together), so a backfill of many series costs one engine.

    An own clock that has taken no sample while the partition's event time moved
    ``quiet_after_ms`` is idle, as a partition whose input is quiet: its windows close as
    the partition's time goes on (the way the idle timer closes a quiet partition's, but
    on event time, so a replay decides the same). Once it has been quiet for the
    lookback and every window that could hold one of its samples is closed on the
    partition's clock too, it hands its series over to the partition's engine, counter
    baselines and all: their later samples are windowed, or dropped as late, there.

    Every decision depends only on the state and the input, so the state is rebuilt by a
    replay as :class:`~aiops_stream.tumbling.TumblingWindows`' is: the checkpoint holds
    each own clock's small checkpoint, its series and the offset it started at, and
    :attr:`replay_from` is the earliest offset any engine needs again.

    >>> from aiops_common.schemas import SeriesMeta
    >>> w = SeriesClocks(WindowConfig((10_000,), allowed_lateness_ms=0), max_clocks=10)
    >>> live, old = w.series_ids([SeriesMeta("cpu", {}), SeriesMeta("replayed", {})])
    >>> w.add(0, np.array([live, live], np.uint32), np.array([1_000_000, 1_010_000]), np.array([1.0, 2.0]))
    >>> w.advance().start_ms.tolist()  # the partition's clock is at 1010 s
    [1000000]
    >>> w.add(1, np.array([old, old], np.uint32), np.array([5_000, 15_000]), np.array([7.0, 8.0]))
    >>> w.advance().start_ms.tolist()  # history of a new series: windowed by its own clock
    [0]
    """

    def __init__(
        self,
        config: WindowConfig,
        source: str = "",
        partition: int = 0,
        max_clocks: int = 10_000,
        quiet_after_ms: int | None = None,
    ) -> None:
        self.config = config
        self.source = source
        self.partition = partition
        self.max_clocks = max_clocks
        self.quiet_after_ms = (
            config.lengths_ms[0] + config.allowed_lateness_ms if quiet_after_ms is None else quiet_after_ms
        )
        self.live = TumblingWindows(config, source, partition)
        self.clocks: dict[int, _Clock] = {}
        """Own clocks by number, in the order they started."""
        self.clock_of: dict[str, int] = {}
        """The own clock of a series, by series key."""
        self.next_clock = 0
        self.batch_shards = np.zeros(0, dtype=np.int64)
        """Shard of each series of the batch :meth:`advance` or :meth:`idle` returned last, in its order."""
        self.dropped_clock_limit = 0
        self._unbound: set[str] = set()
        """Series of restored clocks that the partition's series table does not know yet."""
        self._touched: set[int] = set()

    # -- the surface of TumblingWindows that processors use ----------------------------------------------

    @property
    def applied_offset(self) -> int:
        return self.live.applied_offset

    @applied_offset.setter
    def applied_offset(self, offset: int) -> None:
        self.live.applied_offset = offset

    @property
    def closed(self) -> list[int | None]:
        return self.live.closed

    @property
    def watermark(self) -> int | None:
        return self.live.watermark

    @property
    def dropped_late(self) -> int:
        return self.live.dropped_late + sum(c.windows.dropped_late for c in self.clocks.values())

    @property
    def replay_from(self) -> int:
        return min([self.live.replay_from, *(c.windows.replay_from for c in self.clocks.values())])

    @property
    def buffered_samples(self) -> int:
        return self.live.buffered_samples + sum(c.windows.buffered_samples for c in self.clocks.values())

    def series_ids(self, metas: Sequence[SeriesMeta]) -> npt.NDArray[np.uint32]:
        ids = self.live.series_ids(metas)
        if self._unbound:
            self._bind()
        return ids

    def _bind(self) -> None:
        tab = self.live.series
        for key in list(self._unbound):
            sid = tab.by_key.get(key)
            if sid is not None and tab.alive[sid]:
                tab.clock[sid] = self.clock_of[key]
                self._unbound.discard(key)

    # -- input ------------------------------------------------------------------------------------------

    def add(
        self,
        offset: int,
        sid: npt.NDArray[np.uint32],
        ts: npt.NDArray[np.int64],
        value: npt.NDArray[np.float64],
        latest_ts: int | None = None,
        source: int | None = None,
    ) -> None:
        """Take one message's samples (ids from :meth:`series_ids`): to the partition's engine or a series' own.

        ``latest_ts`` and ``source`` as for :meth:`TumblingWindows.add`; a stream merged from
        several inputs (``source`` given) keeps one clock, that of its slowest input.
        """
        live = self.live
        if source is not None:
            live.add(offset, sid, ts, value, latest_ts, source)
            return
        ts = np.asarray(ts, dtype=np.int64)
        value = np.asarray(value, dtype=np.float64)
        # Messages a restored checkpoint covers are read again only to rebuild state: no clock starts there.
        covered = offset <= live.restored_applied
        if self.clocks and sid.size:
            clock = live.series.clock[sid]
            if (clock >= 0).any():
                sid, ts, value = self._route(offset, covered, clock, sid, ts, value)
        floor = live.open_floor()
        if floor is not None and sid.size and not covered and int(ts.min()) < floor:
            sid, ts, value = self._start_clocks(offset, floor, sid, ts, value)
        live.add(offset, sid, ts, value, latest_ts)

    def _route(
        self,
        offset: int,
        covered: bool,
        clock: npt.NDArray[np.int64],
        sid: npt.NDArray[np.uint32],
        ts: npt.NDArray[np.int64],
        value: npt.NDArray[np.float64],
    ) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """Give the samples of series on own clocks (``clock`` per sample, -1: none) to them; return the rest."""
        metas = self.live.series.metas
        own = clock >= 0
        for number in np.unique(clock[own]).tolist():
            target = self.clocks[number]
            mine = clock == number
            if offset < target.created:
                own &= ~mine  # read again from before the clock started: they went where the rest went
                continue
            windows = target.windows
            local = np.unique(sid[mine], return_inverse=True)
            ids = windows.series_ids([metas[s] for s in local[0].tolist()])
            windows.add(offset, ids[local[1]], ts[mine], value[mine])
            if not covered:  # a restored clock already has the partition's time of its latest input
                target.live_at_input = max(target.live_at_input, self._live_time)
            self._touched.add(number)
        rest = ~own
        return sid[rest], ts[rest], value[rest]

    def _start_clocks(
        self,
        offset: int,
        floor: int,
        sid: npt.NDArray[np.uint32],
        ts: npt.NDArray[np.int64],
        value: npt.NDArray[np.float64],
    ) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """Series the partition's engine has no sample of, with samples behind its open windows, get a clock."""
        tab = self.live.series
        fresh = (ts < floor) & (tab.last_any_ts[sid] == NO_TS)
        if not fresh.any():
            return sid, ts, value
        new = np.unique(sid[fresh]).tolist()
        room = max(0, self.max_clocks - len(self.clock_of))
        taken, refused = new[:room], new[room:]
        if taken:
            number = self.next_clock
            self.next_clock += 1
            keys = [tab.metas[s].key for s in taken]
            windows = TumblingWindows(
                self.config,
                self.source,
                self.partition,
                clock=_clock_name(number),
                series_capacity=max(_CLOCK_CAPACITY, len(keys)),
            )
            self.clocks[number] = _Clock(windows, keys, offset, self._live_time)
            self.clock_of.update(dict.fromkeys(keys, number))
            tab.clock[np.asarray(taken, dtype=np.int64)] = number
        if refused:
            out = np.isin(sid, np.asarray(refused, dtype=sid.dtype))
            n = int(out.sum())
            self.dropped_clock_limit += n
            count_dropped(self.source, DropReason.CLOCK_LIMIT, n, self.partition)
            keep = ~out
            sid, ts, value = sid[keep], ts[keep], value[keep]
        clock = tab.clock[sid]
        return self._route(offset, False, clock, sid, ts, value) if (clock >= 0).any() else (sid, ts, value)

    @property
    def _live_time(self) -> int:
        return self.live.max_ts if self.live.max_ts is not None else NO_TS

    # -- closing ----------------------------------------------------------------------------------------

    def advance(self) -> FeatureBatch | None:
        """Close what the partition's clock and each clock that took samples have passed; ``None`` when nothing."""
        closed: list[tuple[FeatureBatch, npt.NDArray[np.int64]]] = []
        self._collect(self.live, self.live.advance(), closed)
        moved = bool(closed)
        for number in sorted(self._touched):
            clock = self.clocks.get(number)
            if clock is not None:
                self._collect(clock.windows, clock.windows.advance(), closed)
        self._touched.clear()
        if moved and self.clocks:
            self._settle(0, closed)
        return self._combine(closed)

    def idle(self, idle_ms: int) -> FeatureBatch | None:
        """The partition's input was quiet for ``idle_ms``: so was every series' own."""
        closed: list[tuple[FeatureBatch, npt.NDArray[np.int64]]] = []
        self._collect(self.live, self.live.idle(idle_ms), closed)
        if self.clocks:
            self._settle(idle_ms, closed)
        return self._combine(closed)

    def _settle(self, idle_ms: int, closed: list[tuple[FeatureBatch, npt.NDArray[np.int64]]]) -> None:
        """Close the windows of quiet own clocks, and hand over the series of those quiet for the lookback.

        ``idle_ms``: how long the partition's whole input has been quiet, on top of its event time.
        """
        live = self.live
        if live.max_ts is None:
            return
        floor = live.open_floor()
        wm = live.watermark
        tab = live.series
        for number in sorted(self.clocks):
            clock = self.clocks[number]
            windows = clock.windows
            quiet = live.max_ts - clock.live_at_input + idle_ms
            if quiet < self.quiet_after_ms:
                continue
            self._collect(windows, windows.idle(quiet), closed)
            if quiet < self.config.lookback_ms or floor is None or wm is None:
                continue
            # Every window with a sample of its series is closed on the partition's clock, and none past its marks.
            if windows.max_ts is None or windows.max_ts >= floor:
                continue
            if any(m is None or p is None or m > p for m, p in zip(windows.closed, live.closed, strict=True)):
                continue
            self._collect(windows, windows.flush_to(wm), closed)
            del self.clocks[number]
            for key in clock.keys:
                del self.clock_of[key]
                self._unbound.discard(key)
                sid = tab.by_key.get(key)
                if sid is not None and tab.alive[sid]:
                    tab.clock[sid] = -1
                    theirs = windows.series.by_key.get(key)
                    if theirs is not None:
                        live.take_over(sid, windows, theirs)

    @staticmethod
    def _collect(
        windows: TumblingWindows,
        batch: FeatureBatch | None,
        closed: list[tuple[FeatureBatch, npt.NDArray[np.int64]]],
    ) -> None:
        if batch is not None:
            closed.append((batch, windows.batch_shards))

    def _combine(self, closed: list[tuple[FeatureBatch, npt.NDArray[np.int64]]]) -> FeatureBatch | None:
        if not closed:
            return None
        if len(closed) == 1:
            batch, self.batch_shards = closed[0]
            return batch
        batches = [b for b, _ in closed]
        series: list[SeriesMeta] = []
        sids = []
        for b in batches:
            sids.append(b.sid.astype(np.uint32) + np.uint32(len(series)))
            series.extend(b.series)
        self.batch_shards = np.concatenate([s for _, s in closed])
        # Deterministic, as each part's is: a restarted worker closing the same windows names them alike.
        digest = hashlib.blake2b("|".join(b.id for b in batches).encode(), digest_size=8).hexdigest()
        return FeatureBatch(
            series,
            np.concatenate(sids),
            np.concatenate([b.start_ms for b in batches]),
            np.concatenate([b.length_ms for b in batches]),
            np.concatenate([b.values for b in batches], axis=1),
            batches[0].columns,
            id=f"{batches[0].id}+{len(batches) - 1}:{digest}",
            source=self.source,
            watermark_ms=self.live.watermark or 0,
        )

    # -- restart ----------------------------------------------------------------------------------------

    def checkpoint(self) -> dict[str, Any]:
        state = self.live.checkpoint()
        state["replay_from"] = self.replay_from
        if self.clocks or self.next_clock:
            state["next_clock"] = self.next_clock
            state["clocks"] = {
                str(number): {
                    **c.windows.checkpoint(),
                    "keys": c.keys,
                    "created": c.created,
                    "live_at_input": c.live_at_input,
                }
                for number, c in self.clocks.items()
            }
        return state

    def restore(self, state: Mapping[str, Any]) -> None:
        self.live.restore(state)
        self.next_clock = int(state.get("next_clock", 0))
        for name, clock_state in state.get("clocks", {}).items():
            number = int(name)
            keys = [str(k) for k in clock_state["keys"]]
            windows = TumblingWindows(
                self.config,
                self.source,
                self.partition,
                clock=_clock_name(number),
                series_capacity=max(_CLOCK_CAPACITY, len(keys)),
            )
            windows.restore(clock_state)
            self.clocks[number] = _Clock(windows, keys, int(clock_state["created"]), int(clock_state["live_at_input"]))
            self.clock_of.update(dict.fromkeys(keys, number))
            self._unbound.update(keys)
