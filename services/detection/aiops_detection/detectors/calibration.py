"""Turns a raw surprise stream into a score in [0, 1] that means the same on every series.

Two lagging references, both computed only from points before the one scored:

- the *extreme band*: the lowest and highest value of a long window. A value
  outside it scores 0.5 and up, more the further it lands beyond the band
  (relative to the band's width), so "never seen so far" ranks first.
- the *record ratio*: a non-negative surprise divided by the largest surprise of
  a shorter window. A ratio of 1 equals the recent record; ``ratio_scale`` maps
  ratios onto [0, 1].

Each has a streaming class (``learn``/``excess`` or ``ratio``) and a vectorised
function over a ``(series, time)`` block giving the same numbers.

A window may be *blocked* (``block`` > 1): the values are grouped into consecutive
blocks of ``block`` values, and the window is the current block's values plus the
``ceil(window / block)`` complete blocks before it: ``window`` to ``window + block - 1``
values when ``block`` divides ``window``. Only one maximum per block is kept, which
bounds the state of a long window for any series: what lets :class:`RunningMaxPanel`
hold thousands of series in numpy arrays.
"""

from __future__ import annotations

import math
import statistics
from collections import deque

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view
from scipy.ndimage import maximum_filter1d, minimum_filter1d

from aiops_detection.detectors.detector import FloatArray

__all__ = [
    "ExtremeBand",
    "RecordRatio",
    "RobustStats",
    "RunningMax",
    "RunningMaxPanel",
    "band_score",
    "band_score_one",
    "lagging_extremes",
    "lagging_robust_stats",
    "ratio_score",
    "ratio_score_one",
    "record_ratio",
    "refractory",
]

_TINY = 1e-12
_MAD_TO_SIGMA = 1.4826
_CHUNK = 2048  # time steps per vectorised pass, bounding the (series, chunk, window) temporaries


def _band_floor(lower: FloatArray | float, upper: FloatArray | float) -> FloatArray:
    """Smallest band width, so a constant history still has a finite band."""
    return np.maximum(np.asarray(upper, dtype=np.float64) - lower, 1e-9 + 1e-6 * np.abs(upper))


def band_score_one(excess: float, gain: float = 4.0) -> float:
    """``band_score`` of one value, without numpy's per-call overhead where the score is 0."""
    # numpy's tanh, not math.tanh: the two differ in the last bit on a third of inputs, and the
    # streaming and vectorised forms must give the same floats.
    return 0.5 + 0.5 * float(np.tanh(gain * excess)) if excess > 0.0 else 0.0


def ratio_score_one(ratio: float, scale: float = 3.0) -> float:
    """``ratio_score`` of one value, without numpy's per-call overhead."""
    if math.isnan(ratio):
        return 0.0
    return min(1.0, max(0.0, ratio / scale))


def band_score(excess: FloatArray | float, gain: float = 4.0) -> FloatArray:
    """0 inside the band or on its edge, from 0.5 towards 1 beyond it; NaN (no band yet) scores 0."""
    e = np.asarray(excess, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.where(e > 0.0, 0.5 + 0.5 * np.tanh(gain * np.where(e > 0.0, e, 0.0)), 0.0)


def ratio_score(ratio: FloatArray | float, scale: float = 3.0) -> FloatArray:
    """Record ratio mapped onto [0, 1]: ``scale`` times the recent record scores 1."""
    return np.clip(np.nan_to_num(np.asarray(ratio, dtype=np.float64) / scale, nan=0.0, posinf=1.0), 0.0, 1.0)


class RunningMax:
    """Running maximum of the last ``size`` values in amortised O(1) (a monotonic deque).

    With ``block`` > 1 the window is blocked (see the module docstring): the queue holds
    block maxima, and the current block's maximum joins it once the block is complete.
    """

    def __init__(self, size: int, block: int = 1) -> None:
        self.size = size
        self.block = block
        self._blocks = -(-size // block)  # complete blocks in the window
        self._count = 0
        self._partial = -math.inf  # maximum of the current, incomplete block
        self._queue: deque[tuple[int, float]] = deque()  # (block number, its maximum), maxima decreasing

    def push(self, value: float) -> None:
        self._count += 1
        if self.block > 1:
            self._partial = value if self._count % self.block == 1 else max(self._partial, value)
            if self._count % self.block:
                return
            value, self._partial = self._partial, -math.inf
        number = (self._count - 1) // self.block
        while self._queue and self._queue[-1][1] <= value:
            self._queue.pop()
        self._queue.append((number, value))
        while self._queue[0][0] <= number - self._blocks:
            self._queue.popleft()

    @property
    def maximum(self) -> float | None:
        if self._count % self.block:  # the current block has values
            return max(self._queue[0][1], self._partial) if self._queue else self._partial
        return self._queue[0][1] if self._queue else None


class RunningMaxPanel:
    """``RunningMax`` of many series at once: numpy arrays, one vectorised push for any set of rows.

    Row ``i`` keeps its complete blocks' maxima in a ring (block ``j`` in column
    ``j % blocks``, ``-inf`` where no block is yet), the current block's maximum and its
    count. Its ``maximum`` is the same float as a ``RunningMax`` fed the same values.
    ``get``/``set`` move one row's state out to a ``RunningMax`` and back in.
    """

    def __init__(self, size: int, block: int = 1, rows: int = 0) -> None:
        self.size = size
        self.block = block
        self.blocks = -(-size // block)
        self._ring = np.full((rows, self.blocks), -np.inf)
        self._partial = np.full(rows, -np.inf)
        self._count = np.zeros(rows, dtype=np.int64)

    def resize(self, rows: int) -> None:
        """Keep the first ``rows`` rows (all when growing); new rows are empty."""
        kept = min(rows, self._count.size)
        ring, partial, count = self._ring, self._partial, self._count
        self._ring = np.full((rows, self.blocks), -np.inf)
        self._partial = np.full(rows, -np.inf)
        self._count = np.zeros(rows, dtype=np.int64)
        self._ring[:kept], self._partial[:kept], self._count[:kept] = ring[:kept], partial[:kept], count[:kept]

    def maximum(self, rows: npt.NDArray[np.intp]) -> FloatArray:
        """Maximum of each row's window; NaN for a row without values."""
        count = self._count[rows]
        partial = np.where(count % self.block > 0, self._partial[rows], -np.inf)
        return np.where(count > 0, np.maximum(self._ring[rows].max(axis=1), partial), np.nan)

    def push(self, rows: npt.NDArray[np.intp], values: FloatArray) -> None:
        """Push one value into each of ``rows`` (distinct)."""
        count = self._count[rows]
        partial = np.where(count % self.block == 0, values, np.maximum(self._partial[rows], values))
        count += 1
        complete = count % self.block == 0
        done = rows[complete]
        self._ring[done, (count[complete] // self.block - 1) % self.blocks] = partial[complete]
        self._partial[rows] = np.where(complete, -np.inf, partial)
        self._count[rows] = count

    def get(self, row: int) -> RunningMax:
        """Row ``row`` as a ``RunningMax`` that continues exactly where the row is."""
        out = RunningMax(self.size, self.block)
        out._count = int(self._count[row])
        if out._count % self.block:
            out._partial = float(self._partial[row])
        complete = out._count // self.block
        for number in range(max(0, complete - self.blocks), complete):
            value = float(self._ring[row, number % self.blocks])
            while out._queue and out._queue[-1][1] <= value:
                out._queue.pop()
            out._queue.append((number, value))
        return out

    def set(self, row: int, running: RunningMax) -> None:
        """Make row ``row`` continue where ``running`` (of the same size and block) is."""
        if (running.size, running.block) != (self.size, self.block):
            raise ValueError(f"a RunningMax({running.size}, {running.block}) does not fit this panel")
        self._count[row] = running._count
        self._partial[row] = running._partial if running._count % self.block else -np.inf
        # Blocks the queue dropped lie below a later block that stays as long: -inf changes no maximum.
        self._ring[row] = -np.inf
        for number, value in running._queue:
            self._ring[row, number % self.blocks] = value


class ExtremeBand:
    """Lowest and highest of the last ``window`` values learned (a blocked window with ``block`` > 1)."""

    def __init__(self, window: int, block: int = 1) -> None:
        self.high = RunningMax(window, block)
        self.low = RunningMax(window, block)
        """Of the negated values: the lower edge is ``-low.maximum``."""

    @property
    def lower(self) -> float:
        low = self.low.maximum
        return -low if low is not None else np.nan

    @property
    def upper(self) -> float:
        high = self.high.maximum
        return high if high is not None else np.nan

    def excess(self, x: float, upper_only: bool = False) -> float:
        """How far ``x`` lands beyond the band, in band widths; negative inside, NaN before any value.

        ``upper_only`` ignores the lower edge, for surprises where small is never anomalous.
        """
        lower, upper = self.lower, self.upper
        beyond = x - upper if upper_only else max(x - upper, lower - x)
        return beyond / max(upper - lower, 1e-9 + 1e-6 * abs(upper))

    def learn(self, x: float) -> None:
        self.high.push(x)
        self.low.push(-x)


class RecordRatio:
    """A surprise divided by the largest of the last ``window`` surprises learned (blocked with ``block`` > 1)."""

    def __init__(self, window: int, block: int = 1) -> None:
        self.records = RunningMax(window, block)

    @property
    def record(self) -> float:
        """The largest surprise of the window; 0 before any."""
        record = self.records.maximum
        return record if record is not None else 0.0

    def ratio(self, surprise: float) -> float:
        record = self.records.maximum
        if record is None:
            return 0.0
        return surprise / record if record > _TINY else (np.inf if surprise > _TINY else 0.0)

    def learn(self, surprise: float) -> None:
        self.records.push(surprise)


class RobustStats:
    """Median and robust scale (1.4826 MAD, or the standard deviation when the MAD is 0) of the last values."""

    def __init__(self, window: int) -> None:
        self.window = window
        self._values: deque[float] = deque(maxlen=window)
        self._stats: tuple[float, float] | None = None  # scoring then learning a point asks twice

    @property
    def ready(self) -> bool:
        return len(self._values) == self.window

    @property
    def values(self) -> list[float]:
        """The last ``window`` values (fewer at first), oldest first."""
        return list(self._values)

    def learn(self, x: float) -> None:
        self._values.append(x)
        self._stats = None

    def stats(self) -> tuple[float, float]:
        if self._stats is None:
            # Plain-Python medians: for one small window they are several times faster than numpy's, and
            # give the same floats as the vectorised ``np.median`` (the mean of the two middle values).
            median = statistics.median(self._values)
            scale = _MAD_TO_SIGMA * statistics.median(abs(x - median) for x in self._values)
            if scale <= 0.0:
                scale = float(np.fromiter(self._values, dtype=np.float64, count=len(self._values)).std())
            self._stats = median, scale
        return self._stats


def lagging_robust_stats(panel: FloatArray, window: int, first: int = 0) -> tuple[FloatArray, FloatArray]:
    """Vectorised ``RobustStats`` over a block: position t sees the ``window`` values before it.

    Values before column ``first`` are not part of the stream (NaN out there); positions
    without a full window get NaN.
    """
    median = np.full_like(panel, np.nan)
    scale = np.full_like(panel, np.nan)
    n = panel.shape[1]
    for start in range(first + window, n, _CHUNK):
        stop = min(n, start + _CHUNK)
        windows = sliding_window_view(panel[:, start - window : stop - 1], window, axis=1)
        med = np.median(windows, axis=2)
        mad = _MAD_TO_SIGMA * np.median(np.abs(windows - med[..., None]), axis=2)
        median[:, start:stop] = med
        scale[:, start:stop] = np.where(mad > 0.0, mad, windows.std(axis=2))
    return median, scale


def _lagged(filtered: FloatArray) -> FloatArray:
    """Shift one step right along time so position t only sees values up to t-1."""
    out = np.full_like(filtered, np.nan)
    out[:, 1:] = filtered[:, :-1]
    return out


def lagging_extremes(panel: FloatArray, window: int, block: int = 1) -> tuple[FloatArray, FloatArray]:
    """Per position, min and max of the ``window`` values before it (NaN at the first); blocked with ``block`` > 1."""
    if block > 1:
        high = _blocked_lagging_max(panel, window, block)
        return -_blocked_lagging_max(-panel, window, block), high
    # Anchored so the filter ends on the current point; 'nearest' repeats the first value, which is
    # already inside the history, so short histories give the plain min/max of what exists.
    origin = (window - 1) // 2
    low = minimum_filter1d(panel, size=window, axis=1, mode="nearest", origin=origin)
    high = maximum_filter1d(panel, size=window, axis=1, mode="nearest", origin=origin)
    return _lagged(low), _lagged(high)


def _blocked_lagging_max(panel: FloatArray, window: int, block: int) -> FloatArray:
    """``RunningMax(window, block).maximum`` before each position: complete blocks' maxima, then the current one's."""
    rows, n = panel.shape
    blocks = -(-window // block)
    count = -(-n // block)
    shaped = np.full((rows, count * block), -np.inf)
    shaped[:, :n] = np.where(np.isnan(panel), -np.inf, panel)  # padding raises no maximum
    shaped = shaped.reshape(rows, count, block)
    # Position t sees blocks t // block - blocks ... t // block - 1, and its own block's values before t.
    complete = maximum_filter1d(
        shaped.max(axis=2), size=blocks, axis=1, mode="constant", cval=-np.inf, origin=(blocks - 1) // 2
    )
    before = np.full((rows, count), -np.inf)
    before[:, 1:] = complete[:, :-1]
    current = np.full((rows, count * block), -np.inf)
    current[:, 1:] = np.maximum.accumulate(shaped, axis=2).reshape(rows, -1)[:, :-1]
    current[:, ::block] = -np.inf
    out = np.maximum(np.repeat(before, block, axis=1), current)[:, :n]
    return np.where(out > -np.inf, out, np.nan)  # no value before the position, no maximum


def band_excess(panel: FloatArray, window: int, upper_only: bool = False, block: int = 1) -> FloatArray:
    """Vectorised ``ExtremeBand.excess`` for every position of a block."""
    lower, upper = lagging_extremes(panel, window, block)
    with np.errstate(invalid="ignore"):
        beyond = panel - upper if upper_only else np.maximum(panel - upper, lower - panel)
        return beyond / _band_floor(lower, upper)


def record_ratio(surprise: FloatArray, window: int, block: int = 1) -> FloatArray:
    """Vectorised ``RecordRatio.ratio`` for every position of a block of non-negative surprises."""
    _, record = lagging_extremes(surprise, window, block)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(record > _TINY, surprise / record, np.where(surprise > _TINY, np.inf, 0.0))
    ratio[:, 0] = 0.0
    return np.where(np.isnan(surprise), np.nan, ratio)


def refractory(scores: FloatArray, period: int) -> FloatArray:
    """Keep a score only where it beats every score of the ``period`` points before it; else 0.

    One alert per episode: a long anomaly, or the echo of one, does not keep
    re-alerting at the same or a lower level. Threshold-free, so it composes
    with any threshold chosen later.
    """
    previous = np.nan_to_num(lagging_extremes(scores, period)[1], nan=-np.inf)
    return np.where(np.isnan(scores), np.nan, np.where(scores > previous, scores, 0.0))
