"""Silence: a series that stopped reporting, judged against its own reporting interval.

``learn_one(t)`` records that a sample arrived at time ``t`` (seconds);
``score_one(now)`` rates how long the series has been quiet at ``now``.

>>> detector = SilenceDetector()
>>> for t in range(0, 600, 15):
...     detector.learn_one(float(t))
>>> detector.score_one(600.0)
0.0
>>> detector.score_one(585.0 + 15 * 20)
1.0
"""

from __future__ import annotations

import numpy as np

from aiops_detection.detectors.detector import Detector
from aiops_detection.detectors.ring import Ring

__all__ = ["SilenceDetector"]


class SilenceDetector(Detector[float]):
    """Scores the current gap since the last sample in units of the typical gap.

    The typical gap is ``expected_interval`` when the scrape or export interval is
    known, else the median of the last ``window`` gaps, learned after
    ``min_arrivals`` samples (the cold start: a new series is never silent). A gap
    of up to ``tolerance`` typical gaps scores 0, ``saturation`` or more scores 1.
    """

    def __init__(
        self,
        expected_interval: float | None = None,
        window: int = 50,
        min_arrivals: int = 10,
        tolerance: float = 3.0,
        saturation: float = 10.0,
    ) -> None:
        if saturation <= tolerance:
            raise ValueError("saturation must exceed tolerance")
        self.expected_interval = expected_interval
        self.window = window
        self.min_arrivals = min_arrivals
        self.tolerance = tolerance
        self.saturation = saturation
        self._arrivals = 0
        self._last: float | None = None
        self._gaps = Ring(window)  # 8 bytes a gap, allocated whole: a window of up to 64 is one allocation

    @property
    def typical_gap(self) -> float:
        """The interval a healthy series reports at (NaN during the cold start)."""
        if self.expected_interval is not None:
            return self.expected_interval
        if self._arrivals < self.min_arrivals or not len(self._gaps):
            return np.nan
        return float(np.median(self._gaps.array()))

    def score_one(self, x: float) -> float:
        typical = self.typical_gap
        if self._last is None or self._arrivals < self.min_arrivals or not typical > 0:
            return 0.0
        gaps = (x - self._last) / typical
        return float(np.clip((gaps - self.tolerance) / (self.saturation - self.tolerance), 0.0, 1.0))

    def learn_one(self, x: float) -> None:
        if self._last is not None and x > self._last:
            self._gaps.append(x - self._last)
        self._last = x if self._last is None else max(self._last, x)
        self._arrivals += 1
