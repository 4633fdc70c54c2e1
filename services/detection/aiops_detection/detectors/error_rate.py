"""Error-rate spikes: more failed requests than the recent baseline rate explains, given enough requests.

>>> detector = ErrorRateSpike(min_requests=50, min_baseline_requests=1000)
>>> for _ in range(20):
...     detector.learn_one(RequestCounts(errors=1, requests=100))
>>> detector.score_one(RequestCounts(errors=3, requests=10))  # too few requests to judge
0.0
>>> detector.score_one(RequestCounts(errors=30, requests=100)) > 0.9
True
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
from scipy.stats import binom

from aiops_detection.detectors.detector import Detector

__all__ = ["ErrorRateSpike", "RequestCounts"]


@dataclass(frozen=True, slots=True)
class RequestCounts:
    """Requests served in one interval and how many of them failed."""

    errors: float
    requests: float


class ErrorRateSpike(Detector[RequestCounts]):
    """Scores how unlikely an interval's errors are under the baseline error rate (binomial upper tail).

    Intervals with fewer than ``min_requests`` requests score 0: three failures out of
    five requests is noise, not an outage. The baseline is the pooled rate of the last
    ``baseline_window`` intervals, never below ``rate_floor``; nothing scores before it
    holds ``min_baseline_requests`` requests. A tail probability of
    ``10 ** -saturation`` or less scores 1.
    """

    def __init__(
        self,
        min_requests: float = 50.0,
        baseline_window: int = 60,
        min_baseline_requests: float = 1000.0,
        rate_floor: float = 1e-3,
        saturation: float = 10.0,
    ) -> None:
        self.min_requests = min_requests
        self.baseline_window = baseline_window
        self.min_baseline_requests = min_baseline_requests
        self.rate_floor = rate_floor
        self.saturation = saturation
        self._window: deque[RequestCounts] = deque(maxlen=baseline_window)
        self._errors = 0.0
        self._requests = 0.0

    @property
    def baseline_rate(self) -> float:
        """Pooled error rate of the baseline window (NaN while empty)."""
        return self._errors / self._requests if self._requests > 0 else np.nan

    def score_one(self, x: RequestCounts) -> float:
        if x.requests < self.min_requests or self._requests < self.min_baseline_requests:
            return 0.0
        rate = max(self.baseline_rate, self.rate_floor)
        if x.errors <= rate * x.requests:
            return 0.0
        # P(at least this many errors | baseline rate); counts may be rates scaled by a window, so round.
        tail = float(binom.sf(round(x.errors) - 1, round(x.requests), rate))
        surprise = -np.log10(max(tail, 1e-300))
        return float(min(1.0, surprise / self.saturation))

    def learn_one(self, x: RequestCounts) -> None:
        if len(self._window) == self.baseline_window:
            oldest = self._window[0]
            self._errors -= oldest.errors
            self._requests -= oldest.requests
        self._window.append(x)
        self._errors += x.errors
        self._requests += x.requests
