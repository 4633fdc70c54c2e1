"""Latency degradation: the recent median latency against a lagging baseline's.

>>> detector = LatencyDegradation(baseline_window=50, recent_window=5)
>>> for _ in range(60):
...     detector.learn_one(100.0)
>>> detector.score_one(104.0)
0.0
>>> for _ in range(4):
...     detector.learn_one(260.0)
>>> detector.score_one(260.0)
1.0
"""

from __future__ import annotations

from collections import deque

import numpy as np

from aiops_detection.detectors.detector import Detector

__all__ = ["LatencyDegradation"]


class LatencyDegradation(Detector[float]):
    """Scores the ratio of the recent median latency to the baseline median.

    The recent window is the point scored and the ``recent_window - 1`` before it;
    the baseline is the ``baseline_window`` points before those, so a slow
    degradation is measured against a baseline it has not yet contaminated. A
    ratio at or below ``tolerance`` scores 0, at or above ``saturation`` scores 1,
    linearly between. A single slow request moves a median by nothing: it takes
    half the recent window to degrade.
    """

    def __init__(
        self,
        baseline_window: int = 288,
        recent_window: int = 6,
        tolerance: float = 1.2,
        saturation: float = 2.0,
    ) -> None:
        if saturation <= tolerance:
            raise ValueError("saturation must exceed tolerance")
        self.baseline_window = baseline_window
        self.recent_window = recent_window
        self.tolerance = tolerance
        self.saturation = saturation
        self._values: deque[float] = deque(maxlen=baseline_window + recent_window - 1)

    def ratio(self, x: float) -> float:
        """Recent median (ending with ``x``) over the baseline median; NaN until both windows are full."""
        if len(self._values) < self._values.maxlen:  # type: ignore[operator]  # maxlen is always set here
            return np.nan
        values = np.fromiter(self._values, dtype=np.float64, count=len(self._values))
        baseline = float(np.median(values[: self.baseline_window]))
        recent = float(np.median(np.r_[values[self.baseline_window :], x]))
        if baseline <= 0.0:
            return np.inf if recent > 0.0 else 1.0
        return recent / baseline

    def score_one(self, x: float) -> float:
        ratio = self.ratio(x)
        if np.isnan(ratio):
            return 0.0
        return float(np.clip((ratio - self.tolerance) / (self.saturation - self.tolerance), 0.0, 1.0))

    def learn_one(self, x: float) -> None:
        self._values.append(x)
