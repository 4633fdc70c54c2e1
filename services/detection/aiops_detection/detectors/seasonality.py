"""Daily and weekly seasonality: candidate periods from the sampling step, and a test for each on history.

>>> import numpy as np
>>> candidate_periods(3600.0)
(24, 168)
>>> reporting_step_ms([300_000, 600_000, 900_000, 1_200_000], 60_000)  # one window in five carries data
300000
>>> hours = np.arange(24 * 14)
>>> detect_periods(np.sin(2 * np.pi * hours / 24), candidate_periods(3600.0))
(24,)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["DAY_S", "WEEK_S", "candidate_periods", "detect_periods", "reporting_step_ms", "seasonal_strength"]

DAY_S = 86_400.0
WEEK_S = 7 * DAY_S


def candidate_periods(step_s: float, cycles: Sequence[float] = (DAY_S, WEEK_S), shortest: int = 4) -> tuple[int, ...]:
    """Points per day and per week at a sampling step of ``step_s`` seconds (too short ones dropped)."""
    if step_s <= 0:
        return ()
    periods = (round(cycle / step_s) for cycle in cycles)
    return tuple(sorted({p for p in periods if p >= shortest}))


def reporting_step_ms(ends_ms: Sequence[int] | npt.NDArray[np.int64], length_ms: int) -> int:
    """How often a series reports, in whole windows: the median gap between its windows with data.

    A series scraped every 15 s has data in every 1-minute window (step = one window);
    a CloudWatch metric at 5-minute resolution has data in one 1-minute window in five
    (step = five windows), so a day is 288 of its windows, not 1,440. The median keeps
    an occasional missed or doubled report from changing the answer. Fewer than two
    windows: one window.
    """
    ends = np.asarray(ends_ms, dtype=np.int64)
    if length_ms <= 0:
        raise ValueError(f"window length must be positive, got {length_ms} ms")
    gaps = np.diff(ends)
    gaps = gaps[gaps > 0]
    if gaps.size == 0:
        return length_ms
    return length_ms * max(1, round(float(np.median(gaps)) / length_ms))


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
