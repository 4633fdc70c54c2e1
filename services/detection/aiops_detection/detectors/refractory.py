"""One alert per episode: a wrapper that zeroes scores not beating the recent ones.

>>> import numpy as np
>>> from aiops_detection.detectors.robust_band import RobustBandDetector
>>> values = np.r_[np.sin(np.arange(300) / 5.0), 8.0, 8.1, 8.0]
>>> scores = Refractory(RobustBandDetector(z_window=20, min_history=50), period=10).score_many(values)[0]
>>> [round(float(s), 2) for s in scores[-3:]]
[1.0, 0.0, 0.0]
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from aiops_detection.detectors.calibration import RunningMax, refractory
from aiops_detection.detectors.detector import Detector, FloatArray

__all__ = ["Refractory"]


class Refractory(Detector[float]):
    """Scores of ``detector``, kept only where they beat every score of the ``period`` points before.

    A long anomaly, or its echo, then alerts once instead of at every point, while
    a worse point inside the episode still comes through. It needs no threshold.
    """

    def __init__(self, detector: Detector[float], period: int = 100) -> None:
        self.detector = detector
        self.period = period
        self._recent = RunningMax(period)
        self._last: tuple[float, float] | None = None  # (x, raw score) of the last score_one, reused by learn_one

    def _raw(self, x: float) -> float:
        if self._last is not None and self._last[0] == x:
            return self._last[1]
        return self.detector.score_one(x)

    def score_one(self, x: float) -> float:
        raw = self.detector.score_one(x)
        self._last = (x, raw)
        previous = self._recent.maximum
        return raw if previous is None or raw > previous else 0.0

    def learn_one(self, x: float) -> None:
        self._recent.push(self._raw(x))
        self._last = None
        self.detector.learn_one(x)

    def score_many(self, batch: npt.ArrayLike) -> FloatArray:
        raw = self.detector.score_many(batch)  # type: ignore[arg-type]  # every float detector takes arrays
        return refractory(np.asarray(raw, dtype=np.float64), self.period)
