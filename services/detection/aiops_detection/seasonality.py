"""Daily and weekly seasonality: candidate periods from the sampling step, and a test for each on history.

>>> import numpy as np
>>> candidate_periods(3600.0)
(24, 168)
>>> hours = np.arange(24 * 14)
>>> detect_periods(np.sin(2 * np.pi * hours / 24), candidate_periods(3600.0))
(24,)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["DAY_S", "WEEK_S", "candidate_periods", "detect_periods", "seasonal_strength"]

DAY_S = 86_400.0
WEEK_S = 7 * DAY_S


def candidate_periods(step_s: float, cycles: Sequence[float] = (DAY_S, WEEK_S), shortest: int = 4) -> tuple[int, ...]:
    """Points per day and per week at a sampling step of ``step_s`` seconds (too short ones dropped)."""
    if step_s <= 0:
        return ()
    periods = (round(cycle / step_s) for cycle in cycles)
    return tuple(sorted({p for p in periods if p >= shortest}))


def seasonal_strength(values: npt.ArrayLike, period: int) -> float:
    """Autocorrelation at ``period`` (best of period-1..period+1) after removing a moving average of one period.

    Removing the moving average keeps trends and level shifts from passing for
    seasonality; the neighbouring lags absorb a sampling step that is not exact.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.size < 2 * period + 2:
        return 0.0
    kernel = np.ones(period) / period
    trend = np.convolve(x, kernel, mode="same")
    detrended = (x - trend)[period // 2 : x.size - period // 2]
    detrended = detrended - detrended.mean()
    energy = float(detrended @ detrended)
    if energy <= 0.0:
        return 0.0
    best = 0.0
    for lag in (period - 1, period, period + 1):
        if 0 < lag < detrended.size:
            best = max(best, float(detrended[:-lag] @ detrended[lag:]) / energy)
    return best


def detect_periods(
    values: npt.ArrayLike, candidates: Sequence[int], min_cycles: int = 3, min_strength: float = 0.3
) -> tuple[int, ...]:
    """The candidate periods with at least ``min_cycles`` cycles of history and a strong enough autocorrelation.

    Ordered strongest first.
    """
    x = np.asarray(values, dtype=np.float64)
    found = [
        (strength, period)
        for period in candidates
        if period >= 2 and x.size >= min_cycles * period
        for strength in [seasonal_strength(x, period)]
        if strength >= min_strength
    ]
    return tuple(period for _, period in sorted(found, reverse=True))
