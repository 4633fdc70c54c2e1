"""Event-time tumbling windows over the columnar samples of one input partition, vectorised with numpy."""

from __future__ import annotations

import itertools
import operator
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from aiops_common.schemas import FEATURE_COLUMNS, FeatureBatch, MetricKind, SeriesMeta
from aiops_common.tsdb.samples import STALE_NAN_BITS, stale_mask

from aiops_stream.drops import DropReason, count_dropped

__all__ = ["NO_TS", "STALE_NAN_BITS", "TumblingWindows", "WindowConfig", "stale_mask"]


_NO_TS = np.iinfo(np.int64).min
NO_TS = _NO_TS
"""A series' time where it has no sample (a fresh series' ``last_any_ts``)."""
_COL = {name: i for i, name in enumerate(FEATURE_COLUMNS)}
_QUANTILES = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))


@dataclass(frozen=True, slots=True)
class WindowConfig:
    lengths_ms: tuple[int, ...]
    """Window lengths, shortest (the base window) first."""
    allowed_lateness_ms: int = 5_000
    absent_after_ms: int = 30_000
    """A quiet series becomes ``absent`` once its latest sample is this much older than a window's end."""
    lookback_ms: int = 600_000
    """Counter baselines and silent series older than this are forgotten; bounds the replay after a restart."""
    emit_empty: bool = False
    """Quiet known series get a zero-count row (request and error counts) instead of an ``absent`` one."""
    dedup_samples: bool = True
    """Keep one sample per (series, timestamp), the last delivered: right for metric samples delivered twice,
    wrong for events (two requests may end in the same millisecond)."""
    shards: int = 1
    """Partitions the rows go to, by ``shard_of(series key, shards)``: see :attr:`TumblingWindows.batch_shards`."""

    def __post_init__(self) -> None:
        if not self.lengths_ms or sorted(self.lengths_ms) != list(self.lengths_ms) or min(self.lengths_ms) <= 0:
            raise ValueError(f"window lengths must be positive and ascending, got {self.lengths_ms}")
        if self.shards < 1:
            raise ValueError(f"shards must be at least 1, got {self.shards}")


def _counter_like(meta: SeriesMeta) -> bool:
    if meta.kind in (MetricKind.COUNTER, MetricKind.HISTOGRAM):
        return True
    return meta.kind is MetricKind.SUMMARY and meta.name.endswith(("_sum", "_count"))


_MAX_CHUNKS = 64
"""Buffered chunks beyond this are merged into one: a close looks at every chunk."""


@dataclass(slots=True)
class _Chunk:
    """The samples one message added to the buffer, and their time range."""

    sid: npt.NDArray[np.uint32]
    ts: npt.NDArray[np.int64]
    val: npt.NDArray[np.float64]
    tmin: int
    tmax: int

    @classmethod
    def of(cls, sid: npt.NDArray[np.uint32], ts: npt.NDArray[np.int64], val: npt.NDArray[np.float64]) -> _Chunk:
        return cls(sid, ts, val, int(ts.min()), int(ts.max()))

    @property
    def arrays(self) -> _Arrays:
        return self.sid, self.ts, self.val


_Arrays = tuple[npt.NDArray[np.uint32], npt.NDArray[np.int64], npt.NDArray[np.float64]]
"""Samples as (local series id, timestamp, value) columns."""


def _concatenate(parts: list[_Arrays]) -> _Arrays:
    if not parts:
        return np.zeros(0, np.uint32), np.zeros(0, np.int64), np.zeros(0, np.float64)
    if len(parts) == 1:
        return parts[0]
    sid, ts, val = zip(*parts, strict=True)
    return np.concatenate(sid), np.concatenate(ts), np.concatenate(val)


class _SeriesTable:
    """Local ids of the series of one partition and the per-series state that outlives a window."""

    def __init__(self, lengths: int, shards: int, min_capacity: int = 1024) -> None:
        self.shards = shards
        self.min_capacity = min_capacity
        self.metas: list[SeriesMeta] = []
        self.by_key: dict[str, int] = {}
        self.by_ident: dict[tuple[Any, ...], int] = {}
        self.by_object: dict[int, int] = {}
        """Local id by ``id(meta)``: a decoder hands out the same ``SeriesMeta`` for a series batch after batch."""
        self._held: list[SeriesMeta] = []
        """Every object whose ``id`` keys :attr:`by_object`: held, so no other object gets that id meanwhile."""
        self._last: tuple[Sequence[SeriesMeta], npt.NDArray[np.uint32]] | None = None
        """The latest series table looked up and its ids: a scraping producer sends one table again and again."""
        self.capacity = 0
        self.lengths = lengths
        self.counter = np.zeros(0, dtype=bool)
        self.delta = np.zeros(0, dtype=bool)
        self.shard = np.zeros(0, dtype=np.int64)
        self.alive = np.zeros(0, dtype=bool)
        self.last_any_ts = np.zeros(0, dtype=np.int64)
        self.clock = np.zeros(0, dtype=np.int64)
        """Per series, the own clock its samples go to (:mod:`aiops_stream.series_clocks`); -1: this engine."""
        # Per window length: the latest real sample, and the latest sample of any sort, before the closed mark.
        self.base_ts = np.zeros((lengths, 0), dtype=np.int64)
        self.base_val = np.zeros((lengths, 0), dtype=np.float64)
        self.prev_ts = np.zeros((lengths, 0), dtype=np.int64)
        self.prev_stale = np.zeros((lengths, 0), dtype=bool)

    def __len__(self) -> int:
        return len(self.metas)

    @property
    def alive_count(self) -> int:
        return int(self.alive[: len(self.metas)].sum())

    def _grow(self, need: int) -> None:
        if need <= self.capacity:
            return
        cap = max(need, 2 * self.capacity, self.min_capacity)
        extra = cap - self.capacity

        def pad(a: npt.NDArray[Any], fill: Any) -> npt.NDArray[Any]:
            shape = (*a.shape[:-1], extra)
            return np.concatenate([a, np.full(shape, fill, dtype=a.dtype)], axis=-1)

        self.counter = pad(self.counter, False)
        self.delta = pad(self.delta, False)
        self.shard = pad(self.shard, 0)
        self.alive = pad(self.alive, False)
        self.last_any_ts = pad(self.last_any_ts, _NO_TS)
        self.clock = pad(self.clock, -1)
        self.base_ts = pad(self.base_ts, _NO_TS)
        self.base_val = pad(self.base_val, np.nan)
        self.prev_ts = pad(self.prev_ts, _NO_TS)
        self.prev_stale = pad(self.prev_stale, False)
        self.capacity = cap

    def ids(self, metas: Sequence[SeriesMeta]) -> npt.NDArray[np.uint32]:
        """Local ids of a message's series table, registering the ones not seen before."""
        last = self._last
        # The same objects in the same order as last time (a comparison of pointers): the same ids.
        if last is not None and len(last[0]) == len(metas) and all(map(operator.is_, last[0], metas)):
            return last[1]
        if len(self.by_object) > 2 * len(self.metas) + 1024:
            self._forget_objects()  # objects of series the decoder no longer hands out
        # The very objects seen before: the cheapest key, looked up without a Python-level loop.
        found = np.fromiter(
            map(self.by_object.get, map(id, metas), itertools.repeat(-1)), dtype=np.int64, count=len(metas)
        )
        missing = np.flatnonzero(found < 0)
        if missing.size:
            found[missing] = self._lookup([metas[i] for i in missing.tolist()])
        ids = found.astype(np.uint32)
        ids.flags.writeable = False  # handed out again for the next table like this one
        self._last = (metas, ids)
        return ids

    def _lookup(self, metas: list[SeriesMeta]) -> list[int]:
        out: list[int] = []
        registered: list[int] = []
        known = len(self.metas)
        get = self.by_ident.get
        for m in metas:
            # The label order a producer used is a cheap second key (one flat tuple); the sorted key settles the rest.
            ident = (m.name, *m.labels.items())
            sid = get(ident)
            if sid is None:
                sid = self._register(m, ident, registered)
            self.by_object[id(m)] = sid
            self._held.append(m)
            out.append(sid)
        if registered:
            self._start(known, registered)
        return out

    def _forget_objects(self) -> None:
        self.by_object.clear()
        self._held.clear()
        self._last = None

    def _register(self, meta: SeriesMeta, ident: tuple[Any, ...], registered: list[int]) -> int:
        """The id of a series not found by its label order; its arrays are set by :meth:`_start`."""
        key = meta.key  # kept by the SeriesMeta: the feature batches' encoding and sharding use it again
        sid = self.by_key.get(key)
        if sid is None:
            sid = len(self.metas)
            self.metas.append(meta)
            self.by_key[key] = sid
        self.by_ident[ident] = sid
        registered.append(sid)
        return sid

    def _start(self, known: int, registered: list[int]) -> None:
        """Array state of the series one lookup registered, at once: kinds of ids from ``known`` on, fresh state."""
        new = self.metas[known:]
        if new:
            self._grow(len(self.metas))
            self.counter[known : len(self.metas)] = [_counter_like(m) for m in new]
            self.delta[known : len(self.metas)] = [m.kind is MetricKind.DELTA for m in new]
            self.shard[known : len(self.metas)] = [m.shard(self.shards) for m in new]
        sid = np.asarray(registered, dtype=np.int64)
        sid = sid[~self.alive[sid]]  # a forgotten series that returns starts again; a live one keeps its state
        self.alive[sid] = True
        self.last_any_ts[sid] = _NO_TS
        self.clock[sid] = -1
        self.base_ts[:, sid] = _NO_TS
        self.base_val[:, sid] = np.nan
        self.prev_ts[:, sid] = _NO_TS
        self.prev_stale[:, sid] = False

    def evict(self, mask: npt.NDArray[np.bool_]) -> None:
        """Forget series (their ids stay reserved until :meth:`compact`)."""
        gone = np.flatnonzero(mask)
        if gone.size == 0:
            return
        self.alive[gone] = False
        dead = set(gone.tolist())
        self.by_ident = {k: v for k, v in self.by_ident.items() if v not in dead}
        self._forget_objects()  # a forgotten series seen again must register again

    def compact(self) -> npt.NDArray[np.int64] | None:
        """Drop forgotten series once they outnumber the live ones; returns old id -> new id (-1: gone)."""
        n = len(self.metas)
        alive = self.alive[:n]
        live = int(alive.sum())
        if n - live < max(1024, live):
            return None
        remap = np.full(n, -1, dtype=np.int64)
        keep = np.flatnonzero(alive)
        remap[keep] = np.arange(keep.size)
        self.metas = [self.metas[i] for i in keep.tolist()]
        self.by_key = {m.key: i for i, m in enumerate(self.metas)}
        self.by_ident = {k: int(remap[v]) for k, v in self.by_ident.items() if remap[v] >= 0}
        self._forget_objects()
        self.counter = self.counter[keep]
        self.delta = self.delta[keep]
        self.shard = self.shard[keep]
        self.alive = self.alive[keep]
        self.last_any_ts = self.last_any_ts[keep]
        self.clock = self.clock[keep]
        self.base_ts = self.base_ts[:, keep]
        self.base_val = self.base_val[:, keep]
        self.prev_ts = self.prev_ts[:, keep]
        self.prev_stale = self.prev_stale[:, keep]
        self.capacity = keep.size
        return remap


class TumblingWindows:
    """The open windows of one input partition, for every configured window length.

    >>> w = TumblingWindows(WindowConfig((10_000,), allowed_lateness_ms=0))
    >>> ids = w.series_ids([SeriesMeta("cpu", {"host": "a"})])
    >>> w.add(0, ids[[0, 0]], np.array([1_000, 2_000]), np.array([1.0, 3.0]))
    >>> w.add(1, ids[[0]], np.array([10_000]), np.array([5.0]))
    >>> batch = w.advance()
    >>> batch.column("mean").tolist(), batch.start_ms.tolist()
    ([2.0], [0])

    Every input message adds samples ``(series, ts, value)``; the partition's watermark is
    the latest timestamp seen minus the allowed lateness, and every window (of each
    configured length) whose end the watermark has passed is closed at once, producing
    one feature row per series per window. The batch is the unit of work: a close sorts
    the window's samples once and computes every statistic of every series with
    ``reduceat``.

    The state is rebuilt exactly by replaying the input: what a close emits depends only
    on the closed-through marks, the watermark and the messages since
    :attr:`TumblingWindows.replay_from`, so a restarted worker that restores the small
    :meth:`~TumblingWindows.checkpoint` and re-reads its input from there emits the same
    rows again (see :mod:`aiops_stream.checkpoint`).
    """

    def __init__(
        self, config: WindowConfig, source: str = "", partition: int = 0, clock: str = "", series_capacity: int = 1024
    ) -> None:
        self.config = config
        self.source = source
        self.partition = partition
        self.clock = clock
        """Names the engine in batch ids when it is one series' own clock beside the partition's."""
        self.series = _SeriesTable(len(config.lengths_ms), config.shards, series_capacity)
        self.batch_shards = np.zeros(0, dtype=np.int64)
        """Shard of each series of the batch :meth:`advance` or :meth:`idle` returned last, in its order."""
        self.closed: list[int | None] = [None] * len(config.lengths_ms)
        """Per window length: every window ending at or before this mark is closed."""
        self.max_ts: int | None = None
        self.idle_watermark: int | None = None
        """Where :meth:`idle` moved the watermark while the input was quiet; it never goes back."""
        self.applied_offset = -1
        self.dropped_late = 0
        self._chunks: list[_Chunk] = []
        self._buffered = 0
        self._messages: deque[tuple[int, int]] = deque()  # (offset, latest ts) of messages that may matter still
        self._restored_replay_from: int | None = None
        self._restored_applied = -1
        self.source_max: dict[int, int] = {}

    # -- input ------------------------------------------------------------------------------------------

    def series_ids(self, metas: Sequence[SeriesMeta]) -> npt.NDArray[np.uint32]:
        return self.series.ids(metas)

    @property
    def watermark(self) -> int | None:
        if self.max_ts is None:
            return None
        wm = self.max_ts - self.config.allowed_lateness_ms
        return wm if self.idle_watermark is None else max(wm, self.idle_watermark)

    def add(
        self,
        offset: int,
        sid: npt.NDArray[np.uint32],
        ts: npt.NDArray[np.int64],
        value: npt.NDArray[np.float64],
        latest_ts: int | None = None,
        source: int | None = None,
    ) -> None:
        """Take one message's samples (local series ids from :meth:`series_ids`).

        ``latest_ts``: the message's latest event time when it is more than its samples
        show (events that made no sample still move the watermark and must be replayed).
        ``source``: for a stream merged from several ordered inputs, the input it came
        from; the watermark then follows the slowest input seen, not the fastest.
        """
        self.applied_offset = max(self.applied_offset, offset)
        self._restored_replay_from = None
        ts = np.asarray(ts, dtype=np.int64)
        value = np.asarray(value, dtype=np.float64)
        msg_max = int(ts.max()) if sid.size else latest_ts
        if msg_max is None:
            return
        if latest_ts is not None:
            msg_max = max(msg_max, latest_ts)
        self._messages.append((offset, msg_max))
        event_time = msg_max
        if source is not None:
            self.source_max[source] = max(self.source_max.get(source, msg_max), msg_max)
            event_time = min(self.source_max.values())
        self.max_ts = event_time if self.max_ts is None else max(self.max_ts, event_time)
        if sid.size == 0:
            return
        np.maximum.at(self.series.last_any_ts, sid, ts)
        self._track_late(sid, ts, value)
        floor = self._open_floor()
        if floor is not None and int(ts.min()) < floor:
            keep = ts >= floor
            if offset > self._restored_applied:
                # A replayed message's old samples were counted (in windows or as dropped) the first time.
                late = int(sid.size - keep.sum())
                self.dropped_late += late
                count_dropped(self.source, DropReason.LATE, late, self.partition)
            sid, ts, value = sid[keep], ts[keep], value[keep]
        if sid.size:
            self._chunks.append(_Chunk.of(sid, ts, value))
            self._buffered += int(sid.size)

    def _track_late(
        self, sid: npt.NDArray[np.uint32], ts: npt.NDArray[np.int64], value: npt.NDArray[np.float64]
    ) -> None:
        # Samples behind a length's closed mark miss their window but still move the
        # series' "latest sample before the mark" (counter baseline, staleness), so that
        # state is the same whichever order the samples came in.
        tmin = int(ts.min())
        for li, mark in enumerate(self.closed):
            if mark is None or tmin >= mark:
                continue
            late = ts < mark
            self._merge_previous(li, sid[late], ts[late], value[late])

    def _merge_previous(
        self, li: int, sid: npt.NDArray[Any], ts: npt.NDArray[np.int64], value: npt.NDArray[np.float64]
    ) -> None:
        """Fold samples older than length ``li``'s closed mark into its per-series 'latest before' state."""
        if sid.size == 0:
            return
        tab = self.series
        # Latest sample of any sort, and latest real one.
        pick = _latest_per_series(sid, ts)
        s, t, st = sid[pick], ts[pick], stale_mask(value[pick])
        newer = t >= tab.prev_ts[li, s]
        tab.prev_ts[li, s[newer]] = t[newer]
        tab.prev_stale[li, s[newer]] = st[newer]
        real = np.flatnonzero(~np.isnan(value))
        if real.size:
            pick = real[_latest_per_series(sid[real], ts[real])]
            s, t, v = sid[pick], ts[pick], value[pick]
            newer = t >= tab.base_ts[li, s]
            tab.base_ts[li, s[newer]] = t[newer]
            tab.base_val[li, s[newer]] = v[newer]

    @property
    def restored_applied(self) -> int:
        """The last input offset the restored checkpoint covers (-1: none restored)."""
        return self._restored_applied

    def open_floor(self) -> int | None:
        return self._open_floor()

    def _open_floor(self) -> int | None:
        """Samples older than this fall in no open window of any length."""
        marks = [m for m in self.closed if m is not None]
        return min(marks) if len(marks) == len(self.closed) else None

    # -- closing ----------------------------------------------------------------------------------------

    def advance(self) -> FeatureBatch | None:
        """Close every window the watermark has passed; ``None`` when none closed."""
        wm = self.watermark
        if wm is None:
            return None
        targets: list[tuple[int, int | None, int]] = []
        for li, length in enumerate(self.config.lengths_ms):
            new_mark = (wm // length) * length
            old = self.closed[li]
            if old is None or new_mark > old:
                targets.append((li, old, new_mark))
        if not targets:
            return None
        parts: list[_Rows] = []
        for li, old, new_mark in targets:
            length = self.config.lengths_ms[li]
            rows = self._close_length(li, length, old, new_mark, *self._select(old, new_mark))
            if rows is not None:
                parts.append(rows)
            self.closed[li] = new_mark
        floor = self._open_floor()
        if floor is not None:
            self._drop_before(floor)
        self._forget()
        return self._to_batch(parts, targets)

    def idle(self, idle_ms: int) -> FeatureBatch | None:
        """The input was quiet for ``idle_ms``: take event time as that much past the latest sample and close.

        Changes nothing when no window would close, and applied again with the same
        ``idle_ms`` to the state it produced, closes nothing more.
        """
        if self.max_ts is None:
            return None
        wm = self.max_ts + idle_ms - self.config.allowed_lateness_ms
        if all(m is not None and wm // n * n <= m for m, n in zip(self.closed, self.config.lengths_ms, strict=True)):
            return None
        self.idle_watermark = wm if self.idle_watermark is None else max(self.idle_watermark, wm)
        return self.advance()

    def flush_to(self, watermark: int) -> FeatureBatch | None:
        """Close every window the event time ``watermark`` has passed, whatever this engine's own input says."""
        if self.max_ts is None:
            return None
        self.idle_watermark = watermark if self.idle_watermark is None else max(self.idle_watermark, watermark)
        return self.advance()

    def take_over(self, sid: int, other: TumblingWindows, other_sid: int) -> None:
        """Continue series ``other_sid`` of ``other`` (whose windows are all closed here too) as ``sid``.

        The series' latest samples before the closed marks (counter baselines,
        staleness) move over, and the messages that hold them still matter here: a
        restarted worker re-reads them into this engine as samples behind its marks.
        """
        mine, theirs = self.series, other.series
        mine.last_any_ts[sid] = max(int(mine.last_any_ts[sid]), int(theirs.last_any_ts[other_sid]))
        for li in range(len(self.closed)):
            if theirs.base_ts[li, other_sid] >= mine.base_ts[li, sid]:
                mine.base_ts[li, sid] = theirs.base_ts[li, other_sid]
                mine.base_val[li, sid] = theirs.base_val[li, other_sid]
            if theirs.prev_ts[li, other_sid] >= mine.prev_ts[li, sid]:
                mine.prev_ts[li, sid] = theirs.prev_ts[li, other_sid]
                mine.prev_stale[li, sid] = theirs.prev_stale[li, other_sid]
        if other._messages:
            self._messages = deque(sorted({*self._messages, *other._messages}))

    def _select(self, old: int | None, new_mark: int) -> _Arrays:
        """The buffered samples in ``[old, new_mark)``, in the order taken.

        A message's samples mostly fall in one window of the shortest length, so the
        chunk of a message is passed over, taken whole, or masked by its time range.
        """
        picked: list[_Arrays] = []
        for c in self._chunks:
            if c.tmin >= new_mark or (old is not None and c.tmax < old):
                continue
            if c.tmax < new_mark and (old is None or c.tmin >= old):
                picked.append(c.arrays)
                continue
            sel = c.ts < new_mark
            if old is not None:
                sel &= c.ts >= old
            picked.append((c.sid[sel], c.ts[sel], c.val[sel]))
        return _concatenate(picked)

    def _drop_before(self, floor: int) -> None:
        """Drop samples older than every open window; merge the chunks when they get many."""
        kept = []
        for c in self._chunks:
            if c.tmin >= floor:
                kept.append(c)
            elif c.tmax >= floor:
                keep = c.ts >= floor
                kept.append(_Chunk.of(c.sid[keep], c.ts[keep], c.val[keep]))
        if len(kept) > _MAX_CHUNKS:
            kept = [_Chunk.of(*_concatenate([c.arrays for c in kept]))]
        self._chunks = kept
        self._buffered = sum(c.ts.size for c in kept)

    def _close_length(
        self,
        li: int,
        length: int,
        old: int | None,
        new_mark: int,
        sid_in: npt.NDArray[np.uint32],
        ts: npt.NDArray[np.int64],
        val: npt.NDArray[np.float64],
    ) -> _Rows | None:
        """Rows of length ``li``'s windows in ``[old, new_mark)``, from the samples in that range."""
        cfg = self.config
        tab = self.series
        n_series = len(tab)
        sid = sid_in.astype(np.int64)
        stale = stale_mask(val)
        real = ~np.isnan(val)

        # Real samples in (series, time) order; for metrics one per (series, ts): delivered twice counts once.
        rs, rt, rv = sid[real], ts[real], val[real]
        order = _by_series_then_time(rs, rt)
        rs, rt, rv = rs[order], rt[order], rv[order]
        if rs.size and cfg.dedup_samples:
            uniq = np.ones(rs.size, dtype=bool)
            uniq[:-1] = (rs[1:] != rs[:-1]) | (rt[1:] != rt[:-1])
            rs, rt, rv = rs[uniq], rt[uniq], rv[uniq]
        win = rt // length
        stats = _group_stats(rs, rt, rv, win, n_series) if rs.size else None

        # Windows to account for: those with samples, and the recent empty ones (absent or zero rows).
        first = old if old is not None else (int(ts.min()) // length * length if ts.size else new_mark)
        recent_from = max(first, new_mark - cfg.lookback_ms)
        starts = set(range(recent_from - recent_from % length, new_mark, length)) if recent_from < new_mark else set()
        if stats is not None:
            starts.update((np.unique(stats.win) * length).tolist())
        stale_groups = _stale_by_window(sid[stale], ts[stale], length)

        increase = self._increase(li, length, rs, rt, rv, win, stats) if stats is not None else None
        extra_sid: list[npt.NDArray[np.int64]] = []
        extra_start: list[int] = []
        for start in sorted(starts):
            end = start + length
            present = np.zeros(0, dtype=np.int64)
            if stats is not None:
                lo, hi = np.searchsorted(stats.win, [start // length, start // length + 1])
                present = stats.sid[lo:hi]
                self._fold_window(li, present, stats.max_ts[lo:hi], stats.last[lo:hi])
            if start // length in stale_groups:
                st_sid, st_ts = stale_groups[start // length]
                newer = st_ts > tab.prev_ts[li, st_sid]
                tab.prev_ts[li, st_sid[newer]] = st_ts[newer]
                tab.prev_stale[li, st_sid[newer]] = True
            quiet = tab.alive[:n_series].copy()
            quiet[present] = False
            quiet &= tab.base_ts[li, :n_series] >= end - cfg.lookback_ms
            if not cfg.emit_empty:
                ended = tab.prev_stale[li, :n_series] & (tab.prev_ts[li, :n_series] > tab.base_ts[li, :n_series])
                quiet &= ended | (tab.base_ts[li, :n_series] < end - cfg.absent_after_ms)
            q = np.flatnonzero(quiet)
            if q.size:
                extra_sid.append(q)
                extra_start.extend([start] * q.size)
        return _assemble(
            length,
            stats,
            increase,
            tab,
            np.concatenate(extra_sid) if extra_sid else np.zeros(0, np.int64),
            np.asarray(extra_start, dtype=np.int64),
            cfg.emit_empty,
        )

    def _fold_window(
        self, li: int, sid: npt.NDArray[np.int64], max_ts: npt.NDArray[np.int64], last: npt.NDArray[np.float64]
    ) -> None:
        tab = self.series
        newer = max_ts >= tab.base_ts[li, sid]
        tab.base_ts[li, sid[newer]] = max_ts[newer]
        tab.base_val[li, sid[newer]] = last[newer]
        newer = max_ts >= tab.prev_ts[li, sid]
        tab.prev_ts[li, sid[newer]] = max_ts[newer]
        tab.prev_stale[li, sid[newer]] = False

    def _increase(
        self,
        li: int,
        length: int,
        rs: npt.NDArray[np.int64],
        rt: npt.NDArray[np.int64],
        rv: npt.NDArray[np.float64],
        win: npt.NDArray[np.int64],
        stats: _Stats,
    ) -> npt.NDArray[np.float64]:
        """Reset-aware increase of counter series per group; sum of values for delta series; NaN otherwise."""
        tab = self.series
        out = np.full(stats.sid.size, np.nan)
        delta_groups = tab.delta[stats.sid]
        out[delta_groups] = stats.total[delta_groups]
        is_counter = tab.counter[rs]
        if not is_counter.any():
            return out
        cs, cv, cw = rs[is_counter], rv[is_counter], win[is_counter]
        # Samples are in (series, ts) order, so each one's predecessor is the previous element of the same
        # series; a series' first sample in this close continues from the baseline before the window.
        prev = np.empty_like(cv)
        prev[1:] = cv[:-1]
        same = np.zeros(cs.size, dtype=bool)
        same[1:] = cs[1:] == cs[:-1]
        first = ~same
        base_ok = tab.base_ts[li, cs] >= cw * length - self.config.lookback_ms
        prev[first] = tab.base_val[li, cs[first]]
        valid = same | (first & base_ok)
        step = np.where(cv >= prev, cv - prev, cv)
        group = stats.group_of(cs, cw)
        inc = np.bincount(group[valid], weights=step[valid], minlength=stats.sid.size)
        pairs = np.bincount(group[valid], minlength=stats.sid.size)
        counter_groups = tab.counter[stats.sid]
        out[counter_groups] = np.where(pairs[counter_groups] > 0, inc[counter_groups], np.nan)
        return out

    def _forget(self) -> None:
        marks = [m for m in self.closed if m is not None]
        horizon = min(marks) - self.config.lookback_ms
        tab = self.series
        n = len(tab)
        # A series on its own clock has its samples elsewhere; it is forgotten there.
        tab.evict(tab.alive[:n] & (tab.clock[:n] < 0) & (tab.last_any_ts[:n] < horizon))
        while self._messages and self._messages[0][1] < horizon:
            self._messages.popleft()
        remap = tab.compact()
        if remap is not None and self._chunks:
            sid, ts, val = _concatenate([c.arrays for c in self._chunks])
            new = remap[sid]
            keep = new >= 0
            self._chunks = [_Chunk.of(new[keep].astype(np.uint32), ts[keep], val[keep])] if keep.any() else []
            self._buffered = int(keep.sum())

    def _to_batch(self, parts: list[_Rows], targets: list[tuple[int, int | None, int]]) -> FeatureBatch:
        marks = ",".join(f"{self.config.lengths_ms[li]}:{mark}" for li, _, mark in targets)
        clock = f"/{self.clock}" if self.clock else ""
        batch_id = f"{self.source}/{self.partition}{clock}/{marks}"
        if not parts:
            self.batch_shards = np.zeros(0, dtype=np.int64)
            return FeatureBatch.from_rows([], [], [], [], {}, id=batch_id, source=self.source)
        sid = np.concatenate([p.sid for p in parts])
        used, local = np.unique(sid, return_inverse=True)
        metas = self.series.metas
        self.batch_shards = self.series.shard[used]
        return FeatureBatch(
            list(map(metas.__getitem__, used.tolist())),
            local.astype(np.uint32),
            np.concatenate([p.start for p in parts]),
            np.concatenate([p.length for p in parts]),
            np.concatenate([p.values for p in parts], axis=1),
            FEATURE_COLUMNS,
            id=batch_id,
            source=self.source,
            watermark_ms=self.watermark or 0,
        )

    # -- restart ----------------------------------------------------------------------------------------

    @property
    def replay_from(self) -> int:
        """The first input offset a restarted worker must read again to rebuild this state."""
        if self._messages:
            return self._messages[0][0]
        if self._restored_replay_from is not None:
            return self._restored_replay_from
        return self.applied_offset + 1

    @property
    def buffered_samples(self) -> int:
        return self._buffered

    def checkpoint(self) -> dict[str, Any]:
        return {
            "closed": list(self.closed),
            "max_ts": self.max_ts,
            "idle_watermark": self.idle_watermark,
            "applied": self.applied_offset,
            "replay_from": self.replay_from,
            "dropped_late": self.dropped_late,
            "source_max": self.source_max,
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        closed = list(state["closed"])
        if len(closed) != len(self.closed):
            raise ValueError("checkpoint was taken with other window lengths")
        self.closed = closed
        self.max_ts = state["max_ts"]
        self.idle_watermark = state.get("idle_watermark")
        self.applied_offset = self._restored_applied = int(state["applied"])
        self.dropped_late = int(state.get("dropped_late", 0))
        self._restored_replay_from = int(state["replay_from"])
        self.source_max = {int(k): int(v) for k, v in state.get("source_max", {}).items()}


# -- vectorised statistics --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Stats:
    """Per (window, series) group statistics; groups sorted by window then series."""

    win: npt.NDArray[np.int64]
    sid: npt.NDArray[np.int64]
    count: npt.NDArray[np.int64]
    total: npt.NDArray[np.float64]
    mean: npt.NDArray[np.float64]
    min: npt.NDArray[np.float64]
    max: npt.NDArray[np.float64]
    std: npt.NDArray[np.float64]
    quantiles: dict[str, npt.NDArray[np.float64]]
    last: npt.NDArray[np.float64]
    max_ts: npt.NDArray[np.int64]
    n_series: int
    win0: int

    def group_of(self, sid: npt.NDArray[np.int64], win: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        keys = (self.win - self.win0) * self.n_series + self.sid
        return np.searchsorted(keys, (win - self.win0) * self.n_series + sid).astype(np.int64)


def _group_stats(
    sid: npt.NDArray[np.int64],
    ts: npt.NDArray[np.int64],
    val: npt.NDArray[np.float64],
    win: npt.NDArray[np.int64],
    n_series: int,
) -> _Stats:
    win0 = int(win.min())
    g = (win - win0) * n_series + sid
    order = _by_group_then_value(g, val)
    g, v, t = g[order], val[order], ts[order]
    n = g.size
    head = np.ones(n, dtype=bool)
    head[1:] = g[1:] != g[:-1]
    starts = np.flatnonzero(head)
    count = np.diff(np.append(starts, n))
    ends = starts + count - 1
    total = np.add.reduceat(v, starts)
    mean = total / count
    dev = v - np.repeat(mean, count)
    std = np.sqrt(np.add.reduceat(dev * dev, starts) / count)
    quantiles = {name: _quantile(v, starts, count, q) for name, q in _QUANTILES}
    max_ts = np.maximum.reduceat(t, starts)
    # The last value is the one with the latest timestamp (equal timestamps: the larger value).
    at_last = np.where(t == np.repeat(max_ts, count), np.arange(n), -1)
    last = v[np.maximum.reduceat(at_last, starts)]
    ug = g[starts]
    return _Stats(
        win=ug // n_series + win0,
        sid=ug % n_series,
        count=count,
        total=total,
        mean=mean,
        min=v[starts],
        max=v[ends],
        std=std,
        quantiles=quantiles,
        last=last,
        max_ts=max_ts,
        n_series=n_series,
        win0=win0,
    )


def _by_series_then_time(sid: npt.NDArray[np.int64], ts: npt.NDArray[np.int64]) -> npt.NDArray[np.intp]:
    """``np.lexsort((ts, sid))``: one stable sort of a combined key, which finds the runs the input is in."""
    if sid.size == 0:
        return np.zeros(0, dtype=np.intp)
    t0 = int(ts.min())
    span = int(ts.max()) - t0 + 1
    if (int(sid.max()) + 1) * span >= 2**62:
        return np.lexsort((ts, sid))
    order: npt.NDArray[np.intp] = np.argsort(sid * span + (ts - t0), kind="stable")
    return order


def _by_group_then_value(g: npt.NDArray[np.int64], val: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
    """An order that sorts by group, then value within a group, as ``np.lexsort((val, g))`` (``val`` has no NaN).

    Groups are sorted with one stable sort (fast: the input comes in series order), then
    the values of each group in one row of a padded matrix, when padding stays small.
    """
    order: npt.NDArray[np.intp] = np.argsort(g, kind="stable")
    n = order.size
    gs = g[order]
    head = np.ones(n, dtype=bool)
    head[1:] = gs[1:] != gs[:-1]
    starts = np.flatnonzero(head)
    count = np.diff(np.append(starts, n))
    width = int(count.max()) if n else 0
    if width <= 1:
        return order
    if starts.size * width > 4 * n:
        return np.lexsort((val, g))
    # Padding is +inf after a group's values: a stable sort leaves it behind any real +inf.
    grid = np.full((starts.size, width), np.inf)
    grid[np.repeat(np.arange(starts.size), count), np.arange(n) - np.repeat(starts, count)] = val[order]
    within = np.argsort(grid, axis=1, kind="stable")
    picked: npt.NDArray[np.intp] = order[(starts[:, None] + within)[np.arange(width) < count[:, None]]]
    return picked


def _latest_per_series(sid: npt.NDArray[Any], ts: npt.NDArray[np.int64]) -> npt.NDArray[np.intp]:
    """Index of each series' latest sample (ties: the later one in the input wins, as in a replay)."""
    order = np.lexsort((ts, sid))  # stable
    s = sid[order]
    last = np.ones(s.size, dtype=bool)
    last[:-1] = s[1:] != s[:-1]
    picked: npt.NDArray[np.intp] = order[last]
    return picked


def _quantile(
    v: npt.NDArray[np.float64], starts: npt.NDArray[np.intp], count: npt.NDArray[np.int64], q: float
) -> npt.NDArray[np.float64]:
    """``np.quantile(group, q)`` (the default linear method) for every sorted group at once."""
    pos = q * (count - 1)
    lo = np.floor(pos).astype(np.int64)
    frac = pos - lo
    a = v[starts + lo]
    b = v[starts + np.minimum(lo + 1, count - 1)]
    diff = b - a
    # numpy interpolates from the nearer end, which keeps results exact at the endpoints.
    result: npt.NDArray[np.float64] = np.where(frac >= 0.5, b - diff * (1 - frac), a + diff * frac)
    return result


def _stale_by_window(
    sid: npt.NDArray[np.int64], ts: npt.NDArray[np.int64], length: int
) -> dict[int, tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]]:
    """Latest stale marker per series, by window index."""
    if sid.size == 0:
        return {}
    win = ts // length
    order = np.lexsort((ts, sid, win))
    sid, ts, win = sid[order], ts[order], win[order]
    last = np.ones(sid.size, dtype=bool)
    last[:-1] = (sid[1:] != sid[:-1]) | (win[1:] != win[:-1])
    sid, ts, win = sid[last], ts[last], win[last]
    out: dict[int, tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]] = {}
    for w in np.unique(win).tolist():
        m = win == w
        out[int(w)] = (sid[m], ts[m])
    return out


@dataclass(slots=True)
class _Rows:
    sid: npt.NDArray[np.int64]
    start: npt.NDArray[np.int64]
    length: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]


def _assemble(
    length: int,
    stats: _Stats | None,
    increase: npt.NDArray[np.float64] | None,
    tab: _SeriesTable,
    quiet_sid: npt.NDArray[np.int64],
    quiet_start: npt.NDArray[np.int64],
    zero_rows: bool,
) -> _Rows | None:
    seconds = length / 1000.0
    n_stats = 0 if stats is None else stats.sid.size
    n = n_stats + quiet_sid.size
    if n == 0:
        return None
    values = np.full((len(FEATURE_COLUMNS), n), np.nan)
    sid = np.empty(n, dtype=np.int64)
    start = np.empty(n, dtype=np.int64)
    if stats is not None and increase is not None:
        s = slice(0, n_stats)
        sid[s] = stats.sid
        start[s] = stats.win * length
        values[_COL["count"], s] = stats.count
        values[_COL["sum"], s] = stats.total
        values[_COL["mean"], s] = stats.mean
        values[_COL["min"], s] = stats.min
        values[_COL["max"], s] = stats.max
        values[_COL["stddev"], s] = stats.std
        for name, quantile in stats.quantiles.items():
            values[_COL[name], s] = quantile
        values[_COL["last"], s] = stats.last
        values[_COL["increase"], s] = increase
        values[_COL["rate"], s] = increase / seconds
        values[_COL["absent"], s] = 0.0
        rate_kind = tab.counter[stats.sid] | tab.delta[stats.sid]
        values[_COL["value"], s] = np.where(rate_kind, increase / seconds, stats.mean)
    if quiet_sid.size:
        q = slice(n_stats, n)
        sid[q] = quiet_sid
        start[q] = quiet_start
        values[_COL["count"], q] = 0.0
        if zero_rows:
            # Sources that count events (requests, errors, log lines): a quiet window is zero of them.
            values[_COL["sum"], q] = 0.0
            values[_COL["absent"], q] = 0.0
            zeros = np.where(tab.delta[quiet_sid], 0.0, np.nan)
            for col in ("increase", "rate", "value"):
                values[_COL[col], q] = zeros
        else:
            values[_COL["absent"], q] = 1.0
    return _Rows(sid, start, np.full(n, length, dtype=np.int64), values)
