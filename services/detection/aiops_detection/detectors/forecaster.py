"""Predictive alerts: when will a series cross a threshold, e.g. a disk filling up within N hours.

>>> forecaster = CrossingForecaster(window=100)
>>> for hour in range(48):
...     forecaster.learn_one((hour * 3600.0, 50.0 + 0.5 * hour))  # a disk filling by 0.5% an hour
>>> crossing = forecaster.predict_crossing(threshold=90.0, horizon_s=7 * 86400.0)
>>> round(crossing.eta_s / 3600.0)  # hours from the last sample
33
>>> forecaster.predict_crossing(threshold=90.0, horizon_s=12 * 3600.0) is None
True
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
from scipy.stats import theilslopes

from aiops_detection.detectors.detector import Estimator

__all__ = ["CrossingForecast", "CrossingForecaster"]


@dataclass(frozen=True, slots=True)
class CrossingForecast:
    """A predicted threshold crossing, timed from the last sample seen."""

    eta_s: float
    """Seconds until the trend line reaches the threshold."""
    at_s: float
    """Timestamp of the crossing (same clock as the samples)."""
    earliest_s: float
    """Seconds until the crossing at the steeper end of the slope's confidence interval (the cautious time)."""
    slope_per_s: float
    level: float
    """The trend line's value at the last sample."""


class CrossingForecaster(Estimator):
    """Robust linear trend (Theil-Sen) over the last ``window`` samples, extrapolated to a threshold.

    Theil-Sen takes the median of pairwise slopes, so spikes and a few bad samples do
    not tilt the line. Samples are ``(timestamp_s, value)``. Nothing is predicted
    before ``min_samples`` samples.
    """

    def __init__(self, window: int = 288, min_samples: int = 12, confidence: float = 0.9) -> None:
        self.window = window
        self.min_samples = min_samples
        self.confidence = confidence
        self._samples: deque[tuple[float, float]] = deque(maxlen=window)

    def learn_one(self, x: tuple[float, float]) -> None:
        self._samples.append((float(x[0]), float(x[1])))

    def trend(self) -> tuple[float, float, float, float] | None:
        """``(slope, level at the last sample, low slope, high slope)``, or None during the cold start."""
        if len(self._samples) < self.min_samples:
            return None
        times, values = np.asarray(self._samples, dtype=np.float64).T
        last = times[-1]
        slope, intercept, low, high = theilslopes(values, times - last, alpha=self.confidence)
        return float(slope), float(intercept), float(low), float(high)

    def predict_crossing(self, threshold: float, horizon_s: float) -> CrossingForecast | None:
        """The crossing of ``threshold`` (from either side) within ``horizon_s`` seconds, if the trend gets there."""
        fitted = self.trend()
        if fitted is None:
            return None
        slope, level, low, high = fitted
        gap = threshold - level
        if gap == 0.0:
            return CrossingForecast(0.0, self._samples[-1][0], 0.0, slope, level)
        if slope == 0.0 or np.sign(slope) != np.sign(gap):
            return None
        eta = gap / slope
        if eta > horizon_s:
            return None
        # The steeper confidence bound reaches the threshold first.
        steepest = high if gap > 0 else low
        earliest = gap / steepest if np.sign(steepest) == np.sign(gap) else eta
        return CrossingForecast(eta, self._samples[-1][0] + eta, min(eta, earliest), slope, level)
