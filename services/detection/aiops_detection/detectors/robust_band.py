"""Tier 1, basic: lagging rolling quantiles and a robust z-score, vectorised over many series with numpy.

Two cheap views of each new point, both against lagging windows only:

- the extremes (0 and 1 quantiles) of the last ``band_window`` values: a value
  outside everything seen recently scores 0.5 and up;
- the robust z-score of the point's change (first difference) against the
  median and MAD of the last ``z_window`` changes, divided by the largest such
  z of the last ``record_window`` points (its *record ratio*).

The score is the larger of the two. Nothing scores before ``min_history`` points.
Both extremes windows are blocked in 50 blocks (``calibration``): the band spans the last
5000 to 5099 values, the record the last 500 to 509 z-scores, in every form below.

Three forms give the same floats: the streaming ``RobustBandDetector`` (one series),
its ``explain_many`` (a ``(series, time)`` block, each row from a fresh state), and
``RobustBandPanel`` (the live state of many series, stepped one value per series in
one numpy pass, as the detection service does for every window of a batch).

>>> import numpy as np
>>> detector = RobustBandDetector(z_window=20, min_history=50)
>>> values = np.r_[np.sin(np.arange(300) / 5.0), 8.0]
>>> scores = detector.score_many(values)[0]
>>> float(scores[:50].max()), bool(scores[-1] > 0.9)
(0.0, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from aiops_detection.detectors.calibration import (
    _MAD_TO_SIGMA,
    _TINY,
    ExtremeBand,
    RecordRatio,
    RobustStats,
    RunningMaxPanel,
    _band_floor,
    band_excess,
    band_score,
    band_score_one,
    lagging_extremes,
    lagging_robust_stats,
    ratio_score,
    ratio_score_one,
    record_ratio,
)
from aiops_detection.detectors.detector import Detector, FloatArray, as_panel

__all__ = ["BasicExplanation", "RobustBandDetector", "RobustBandPanel"]

_BLOCKS = 50
"""Blocks per extremes window: bounded state per series, and windows below 100 values stay exact."""


def _block(window: int) -> int:
    return max(1, window // _BLOCKS)


def _row_medians(rows: FloatArray) -> FloatArray:
    """Median of each row: the middle value, or the mean of the two middle values, as ``np.median`` gives it."""
    # Sorting rows of z_window values is about three times faster than np.median's selection.
    ordered = np.sort(rows, axis=1)
    size = rows.shape[1]
    return (ordered[:, (size - 1) // 2] + ordered[:, size // 2]) / 2


def _scale_floor(reference: FloatArray | float) -> FloatArray:
    """Smallest robust scale: keeps z finite on a constant stretch while staying far below any real change."""
    return np.asarray(1e-9 + 1e-6 * np.maximum(np.abs(reference), 1.0), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class BasicExplanation:
    """Tier-1 evidence for every position of a block (or every row of one ``RobustBandPanel.step``)."""

    score: FloatArray
    band: FloatArray  # extreme-band part of the score
    ratio: FloatArray  # record-ratio part of the score
    lower: FloatArray  # values between lower and upper would have scored below 0.5
    upper: FloatArray


class RobustBandDetector(Detector[float]):
    """Tier 1: extremes of a long lagging window plus a record-calibrated robust z-score of changes."""

    def __init__(
        self,
        band_window: int = 5000,
        z_window: int = 100,
        record_window: int = 500,
        ratio_scale: float = 3.0,
        band_gain: float = 4.0,
        min_history: int = 200,
    ) -> None:
        if not 0 < z_window < min_history:
            raise ValueError("z_window must be positive and shorter than min_history")
        self.band_window = band_window
        self.z_window = z_window
        self.record_window = record_window
        self.ratio_scale = ratio_scale
        self.band_gain = band_gain
        self.min_history = min_history
        self._seen = 0
        self._previous = np.nan
        self._changes = RobustStats(z_window)
        self._band = ExtremeBand(band_window, _block(band_window))
        self._record = RecordRatio(record_window, _block(record_window))

    # -- one point -------------------------------------------------------------------------------------

    def _change_stats(self) -> tuple[float, float]:
        """Median and robust scale of the last ``z_window`` changes."""
        median, scale = self._changes.stats()
        return median, max(scale, float(_scale_floor(self._previous)))

    def _z(self, x: float) -> float:
        if not self._changes.ready:
            return 0.0
        median, scale = self._change_stats()
        return abs(x - self._previous - median) / scale

    def score_one(self, x: float) -> float:
        if self._seen < self.min_history:
            return 0.0
        ratio = ratio_score_one(self._record.ratio(self._z(x)), self.ratio_scale)
        return float(max(band_score_one(self._band.excess(x), self.band_gain), ratio))

    def learn_one(self, x: float) -> None:
        self._record.learn(self._z(x))
        self._band.learn(x)
        if self._seen > 0:
            self._changes.learn(x - self._previous)
        self._previous = x
        self._seen += 1

    def expected_band(self) -> tuple[float, float]:
        """Range of next values that would score below 0.5; ``(nan, nan)`` during the cold start."""
        if self._seen < self.min_history or not self._changes.ready:
            return np.nan, np.nan
        median, scale = self._change_stats()
        # A change of z scores ratio_scale * z / record; it reaches 0.5 at z = ratio_scale * record / 2.
        reach = 0.5 * self.ratio_scale * self._record.record * scale
        centre = self._previous + median
        return max(self._band.lower, centre - reach), min(self._band.upper, centre + reach)

    # -- many series -----------------------------------------------------------------------------------

    def score_many(self, batch: npt.ArrayLike) -> FloatArray:
        return self.explain_many(batch).score

    def explain_many(self, batch: npt.ArrayLike) -> BasicExplanation:
        """Scores and evidence for a ``(series, time)`` block, each row streamed from a fresh state."""
        panel = as_panel(batch)
        n = panel.shape[1]
        changes = np.full_like(panel, np.nan)
        changes[:, 1:] = np.diff(panel, axis=1)
        # Changes exist from the second point on.
        median, scale = lagging_robust_stats(changes, self.z_window, first=1)
        previous = np.full_like(panel, np.nan)
        previous[:, 1:] = panel[:, :-1]
        scale = np.maximum(scale, _scale_floor(previous))
        z = np.abs(changes - median) / scale
        z = np.where(np.isnan(panel), np.nan, np.nan_to_num(z, nan=0.0))
        band_block, record_block = _block(self.band_window), _block(self.record_window)
        ratio_part = ratio_score(record_ratio(z, self.record_window, record_block), self.ratio_scale)
        band_part = band_score(band_excess(panel, self.band_window, block=band_block), self.band_gain)

        lower_band, upper_band = lagging_extremes(panel, self.band_window, band_block)
        _, record = lagging_extremes(z, self.record_window, record_block)
        reach = 0.5 * self.ratio_scale * np.nan_to_num(record, nan=0.0) * scale
        lower = np.maximum(lower_band, previous + median - reach)
        upper = np.minimum(upper_band, previous + median + reach)

        cold = np.zeros(n, dtype=bool)
        cold[: self.min_history] = True
        padded = np.isnan(panel)
        score = np.where(cold, 0.0, np.maximum(band_part, ratio_part))
        nan = np.nan
        return BasicExplanation(
            score=np.where(padded, nan, score),
            band=np.where(padded, nan, np.where(cold, 0.0, band_part)),
            ratio=np.where(padded, nan, np.where(cold, 0.0, ratio_part)),
            lower=np.where(cold | padded, nan, lower),
            upper=np.where(cold | padded, nan, upper),
        )


class RobustBandPanel:
    """The tier-1 state of many series in numpy arrays, scored and learned one value per series in one pass.

    Row ``i`` holds what a ``RobustBandDetector`` with the template's hyperparameters
    holds for one series: the previous value, the count, the last ``z_window`` changes
    (a ring: change ``k`` in column ``k % z_window``), the blocked extremes of the values
    and the blocked record of the z-scores. :meth:`step` gives, for each row, the floats
    ``score_one`` and ``expected_band`` then ``learn_one`` give on that row's detector.

    Rows come from detectors and go back into them (:meth:`add`, :meth:`put`,
    :meth:`take`): a series' state is pickled, trained and restored as a detector.

    >>> import numpy as np
    >>> panel = RobustBandPanel(RobustBandDetector(z_window=20, min_history=50))
    >>> rows = np.array([panel.add(), panel.add()])
    >>> for t in range(300):
    ...     explained = panel.step(rows, np.array([np.sin(t / 5.0), np.cos(t / 7.0)]))
    >>> explained = panel.step(rows, np.array([8.0, 0.5]))
    >>> bool(explained.score[0] > 0.9), bool(explained.score[1] < 0.5)
    (True, True)
    """

    def __init__(self, template: RobustBandDetector) -> None:
        self.template = template.clone()
        self._rows = 0
        self._free: list[int] = []
        self._seen = np.zeros(0, dtype=np.int64)
        self._previous = np.zeros(0)
        self._changes = np.zeros((0, template.z_window))
        self._high = RunningMaxPanel(template.band_window, _block(template.band_window))
        self._low = RunningMaxPanel(template.band_window, _block(template.band_window))  # of the negated values
        self._record = RunningMaxPanel(template.record_window, _block(template.record_window))

    def __len__(self) -> int:
        """Rows in use."""
        return self._rows - len(self._free)

    def add(self, detector: RobustBandDetector | None = None) -> int:
        """A new row, fresh or continuing ``detector``; its index (a released one first)."""
        if self._free:
            row = self._free.pop()
            self.put(row, detector if detector is not None else self.template)
            return row
        if self._rows == self._seen.size:
            capacity = max(16, 2 * self._rows)
            self._seen = np.resize(self._seen, capacity)
            self._previous = np.resize(self._previous, capacity)
            self._changes = np.resize(self._changes, (capacity, self.template.z_window))
            for running in (self._high, self._low, self._record):
                running.resize(capacity)
        row = self._rows
        self._rows += 1
        self.put(row, detector if detector is not None else self.template)
        return row

    def put(self, row: int, detector: RobustBandDetector) -> None:
        """Make row ``row`` continue where ``detector`` (with the template's hyperparameters) is."""
        if detector.get_params() != self.template.get_params():
            raise ValueError(f"{detector!r} does not fit a panel of {self.template!r}")
        self._seen[row] = detector._seen
        self._previous[row] = detector._previous
        self._changes[row] = 0.0
        changes = detector._changes.values
        learned = max(0, detector._seen - 1)
        for k, change in enumerate(changes, start=learned - len(changes)):
            self._changes[row, k % self.template.z_window] = change
        self._high.set(row, detector._band.high)
        self._low.set(row, detector._band.low)
        self._record.set(row, detector._record.records)

    def release(self, row: int) -> None:
        """Row ``row`` is no longer used (its series was forgotten); :meth:`add` hands it out again."""
        if not 0 <= row < self._rows or row in self._free:
            raise ValueError(f"row {row} is not in use")
        self._free.append(row)

    def take(self, row: int) -> RobustBandDetector:
        """A detector that continues exactly where row ``row`` is."""
        window = self.template.z_window
        detector = self.template.clone()
        detector._seen = int(self._seen[row])
        detector._previous = float(self._previous[row])
        learned = max(0, detector._seen - 1)
        for k in range(max(0, learned - window), learned):
            detector._changes.learn(float(self._changes[row, k % window]))
        detector._band.high = self._high.get(row)
        detector._band.low = self._low.get(row)
        detector._record.records = self._record.get(row)
        return detector

    def step(self, rows: npt.ArrayLike, values: npt.ArrayLike) -> BasicExplanation:
        """Score ``values[i]`` against row ``rows[i]`` (rows distinct), then learn it; NaN bands while cold."""
        index = np.asarray(rows, dtype=np.intp)
        x = np.asarray(values, dtype=np.float64)
        t = self.template
        seen, previous = self._seen[index], self._previous[index]
        median, scale = self._change_stats(index, seen)
        scale = np.maximum(scale, _scale_floor(previous))
        ready = seen > t.z_window  # z_window changes learned
        with np.errstate(invalid="ignore"):  # rows without a previous value yet
            z = np.where(ready, np.abs(x - previous - median) / scale, 0.0)
        record = self._record.maximum(index)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(record > _TINY, z / record, np.where(z > _TINY, np.inf, 0.0))
        ratio_part = ratio_score(np.where(np.isnan(record), 0.0, ratio), t.ratio_scale)
        lower_band, upper_band = -self._low.maximum(index), self._high.maximum(index)
        with np.errstate(invalid="ignore"):  # rows without a value yet have no band
            beyond = np.maximum(x - upper_band, lower_band - x)
        band_part = band_score(beyond / _band_floor(lower_band, upper_band), t.band_gain)

        reach = 0.5 * t.ratio_scale * np.nan_to_num(record, nan=0.0) * scale
        cold = seen < t.min_history
        no_band = cold | ~ready
        explained = BasicExplanation(
            score=np.where(cold, 0.0, np.maximum(band_part, ratio_part)),
            band=np.where(cold, 0.0, band_part),
            ratio=np.where(cold, 0.0, ratio_part),
            lower=np.where(no_band, np.nan, np.maximum(lower_band, previous + median - reach)),
            upper=np.where(no_band, np.nan, np.minimum(upper_band, previous + median + reach)),
        )
        self._learn(index, x, z, seen, previous)
        return explained

    def _change_stats(self, index: npt.NDArray[np.intp], seen: npt.NDArray[np.int64]) -> tuple[FloatArray, FloatArray]:
        """``RobustStats.stats`` of each row's changes (garbage for rows that have fewer than ``z_window``)."""
        window = self._changes[index]
        median = _row_medians(window)
        scale = _MAD_TO_SIGMA * _row_medians(np.abs(window - median[:, None]))
        flat = np.flatnonzero(scale <= 0.0)
        if flat.size:
            # The standard deviation, summed oldest first like RobustStats, so the floats agree.
            size = self.template.z_window
            oldest = (seen[flat] - 1) % size
            order = (oldest[:, None] + np.arange(size)) % size
            scale[flat] = np.take_along_axis(window[flat], order, axis=1).std(axis=1)
        return median, scale

    def _learn(
        self,
        index: npt.NDArray[np.intp],
        x: FloatArray,
        z: FloatArray,
        seen: npt.NDArray[np.int64],
        previous: FloatArray,
    ) -> None:
        self._record.push(index, z)
        self._high.push(index, x)
        self._low.push(index, -x)
        changed = seen > 0
        self._changes[index[changed], (seen[changed] - 1) % self.template.z_window] = (x - previous)[changed]
        self._previous[index] = x
        self._seen[index] = seen + 1
