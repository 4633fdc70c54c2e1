"""Tier 1, basic: lagging rolling quantiles and a robust z-score, vectorised over many series with numpy.

Two cheap views of each new point, both against lagging windows only:

- the extremes (0 and 1 quantiles) of the last ``band_window`` values: a value
  outside everything seen recently scores 0.5 and up;
- the robust z-score of the point's change (first difference) against the
  median and MAD of the last ``z_window`` changes, divided by the largest such
  z of the last ``record_window`` points (its *record ratio*).

The score is the larger of the two. Nothing scores before ``min_history`` points.

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

from aiops_detection.calibration import (
    ExtremeBand,
    RecordRatio,
    RobustStats,
    band_excess,
    band_score,
    band_score_one,
    lagging_extremes,
    lagging_robust_stats,
    ratio_score,
    ratio_score_one,
    record_ratio,
)
from aiops_detection.detector import Detector, FloatArray, as_panel

__all__ = ["BasicExplanation", "RobustBandDetector"]


def _scale_floor(reference: FloatArray | float) -> FloatArray:
    """Smallest robust scale: keeps z finite on a constant stretch while staying far below any real change."""
    return np.asarray(1e-9 + 1e-6 * np.maximum(np.abs(reference), 1.0), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class BasicExplanation:
    """Tier-1 evidence for every position of a block."""

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
        self._band = ExtremeBand(band_window)
        self._record = RecordRatio(record_window)

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
        ratio_part = ratio_score(record_ratio(z, self.record_window), self.ratio_scale)
        band_part = band_score(band_excess(panel, self.band_window), self.band_gain)

        lower_band, upper_band = lagging_extremes(panel, self.band_window)
        _, record = lagging_extremes(z, self.record_window)
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
