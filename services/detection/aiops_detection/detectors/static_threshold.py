"""Static thresholds from configuration: the limits an operator already knows (e.g. disk above 95%).

>>> detector = StaticThreshold(upper=95.0)
>>> detector.score_one(80.0), detector.score_one(95.0), round(detector.score_one(99.0), 2)
(0.0, 0.5, 0.7)
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from aiops_detection.detectors.detector import Detector

__all__ = ["StaticThreshold", "static_thresholds"]


class StaticThreshold(Detector[float]):
    """Scores 0 inside ``[lower, upper]`` and 0.5 and up beyond, growing with the distance.

    The distance is measured in ``scale`` units (default: the width of the limits,
    or a tenth of the magnitude of the one limit given). It learns nothing and needs no history.
    """

    def __init__(self, lower: float | None = None, upper: float | None = None, scale: float | None = None) -> None:
        if lower is None and upper is None:
            raise ValueError("give a lower limit, an upper limit or both")
        if lower is not None and upper is not None and lower > upper:
            raise ValueError("lower limit above upper limit")
        self.lower = lower
        self.upper = upper
        self.scale = scale

    @property
    def _unit(self) -> float:
        if self.scale is not None:
            return self.scale
        if self.lower is not None and self.upper is not None and self.upper > self.lower:
            return self.upper - self.lower
        return max(0.1 * abs(self.upper if self.upper is not None else self.lower or 0.0), 1e-9)

    def score_one(self, x: float) -> float:
        beyond = max(
            x - self.upper if self.upper is not None else -np.inf,
            self.lower - x if self.lower is not None else -np.inf,
        )
        if beyond < 0.0:
            return 0.0
        return float(0.5 + 0.5 * np.tanh(beyond / self._unit))

    def learn_one(self, x: float) -> None:
        """Static limits learn nothing."""


def static_thresholds(limits: Mapping[str, tuple[float | None, float | None]]) -> dict[str, StaticThreshold]:
    """One detector per metric name from configured ``(lower, upper)`` limits (see ``DetectionSettings``)."""
    return {name: StaticThreshold(lower, upper) for name, (lower, upper) in limits.items()}
