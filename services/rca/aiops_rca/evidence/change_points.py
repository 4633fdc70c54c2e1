"""When each series moved and by how much: robust scores against the baseline, and a Bayesian change point.

Robust scores are BARO's: a series' baseline is summarised by its median and spread (the
MAD, falling back to the IQR and then the standard deviation when most baseline values are
equal), and each later point by ``z = (x - median) / spread``. A series whose baseline never
varied at all (an availability of exactly 100 %) gets a spread from its level, so that any
real departure counts. Any other baseline's spread is at least ``SPREAD_FLOOR_REL`` (0.5 %) of its
level plus ``SPREAD_FLOOR_ABS``: a baseline of a few near-equal values (a roll-up read on a finer grid,
a short history) would otherwise have a spread of float noise, and a 2 % move would score a robust z
in the tens of thousands.

The change point is a single mean shift with a Gaussian likelihood, unknown means on each
side (flat prior) and the noise level estimated robustly: the log evidence of a change at
every position and of no change at all are computed with cumulative sums in O(n), which
gives both where the series most likely changed and how much more likely a change is than
none (the log Bayes factor).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from aiops_rca.case import SeriesKey

__all__ = [
    "MIN_BASELINE",
    "SPREAD_FLOOR_ABS",
    "SPREAD_FLOOR_REL",
    "Baseline",
    "ChangePoint",
    "ScoredSeries",
    "SeriesScore",
    "anomaly_llr",
    "baseline_of",
    "change_point",
    "first_sustained",
    "score_window",
    "sustained",
]

_MAD_TO_SIGMA = 1.4826
_IQR_TO_SIGMA = 1 / 1.349
MIN_BASELINE = 5
"""Fewest finite values a baseline is taken from."""
SPREAD_FLOOR_REL = 0.005
"""The least spread of a baseline that varied, as a fraction of its median's size: a move of 2 % of the
level scores at most 4, below the default threshold of 5, however flat the baseline was."""
SPREAD_FLOOR_ABS = 1e-9
"""Added to the floor, so a baseline around zero has a scale too."""
_LLR_MIN = -4.0
_LLR_CONSTANT = 2.0

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Baseline:
    median: float
    spread: float
    n: int
    constant: bool
    """Every baseline value was the same."""


@dataclass(frozen=True, slots=True)
class SeriesScore:
    """How far one series moved in the analysed window."""

    score: float
    """Robust z of the window, signed: the largest departure two consecutive points both reach (:func:`sustained`)."""
    peak: float
    """The single most extreme robust z (signed)."""
    onset: int | None
    """Index (into the window) of the first point of the first run beyond the threshold; None when none is."""
    peak_index: int
    value: float
    """The value at the peak."""
    baseline: Baseline


@dataclass(frozen=True, slots=True)
class ChangePoint:
    index: int
    """The first index of the new level."""
    log_bayes_factor: float
    """log P(data | one change) - log P(data | no change): above ~5 is strong evidence of a change."""
    shift: float
    """New level minus old, in units of the noise level."""


@dataclass(frozen=True, slots=True)
class ScoredSeries:
    """One series of a case with its score: what the ranking and the rules read."""

    key: SeriesKey
    window: FloatArray
    """Its values in the analysed window."""
    score: SeriesScore
    llr: float
    """Log likelihood ratio that it moved (:func:`anomaly_llr` of its score)."""
    onset_ms: int | None
    """When it first went beyond the threshold."""


def anomaly_llr(z: float, threshold: float, constant: bool = False, cap: float = 8.0) -> float:
    """Log likelihood ratio "moved" vs "normal" of a robust z: 0 at the threshold, +1.4 at twice it, clipped.

    Logarithmic in z, so a caller that amplifies its callee's slowdown tenfold does not outweigh it tenfold,
    and a baseline measured on another day (a level that shifted since) does not outweigh the structure.

    >>> round(anomaly_llr(10.0, 5.0), 2), anomaly_llr(5.0, 5.0), anomaly_llr(0.0, 5.0)
    (1.39, 0.0, -4.0)
    """
    magnitude = abs(z)
    if magnitude <= 0.0:
        return _LLR_MIN
    # A series that never varied before has no scale: that it departed says something, how far little.
    top = _LLR_CONSTANT if constant else cap
    return float(min(max(2.0 * math.log(magnitude / threshold), _LLR_MIN), top))


def baseline_of(values: FloatArray) -> Baseline | None:
    """Median and spread of the finite baseline values; None with fewer than five."""
    x = values[np.isfinite(values)]
    if x.size < MIN_BASELINE:
        return None
    median = float(np.median(x))
    spread = float(np.median(np.abs(x - median))) * _MAD_TO_SIGMA
    if spread <= 0.0:
        q75, q25 = np.percentile(x, [75, 25])
        spread = float(q75 - q25) * _IQR_TO_SIGMA
    if spread <= 0.0:
        spread = float(np.std(x))
    constant = spread <= 0.0
    # Never varied: a departure of a thousandth of its level (or of 1e-3 at level 0) is one unit. Otherwise the
    # floor: a spread far below the level (near-equal values) would turn a small move into a huge score.
    floor = abs(median) * SPREAD_FLOOR_REL + SPREAD_FLOOR_ABS
    spread = max(abs(median) * 1e-3, 1e-3) if constant else max(spread, floor)
    return Baseline(median, spread, int(x.size), constant)


def sustained(z: FloatArray) -> tuple[float, int | None]:
    """The largest departure two consecutive points both reach (signed), and where that first reaches its size.

    A single-point blip (a cold start, one slow scrape) does not count as much as a departure that
    lasts; NaN breaks a run. A one-point series returns its point.

    >>> sustained(np.array([0.0, 9.0, 0.0, 6.0, 7.0]))
    (6.0, 3)
    """
    if z.size == 1:
        return (float(z[0]), 0) if np.isfinite(z[0]) else (0.0, None)
    a = np.abs(z)
    pair = np.fmin(a[:-1], a[1:])
    pair = np.where(np.isfinite(a[:-1]) & np.isfinite(a[1:]), pair, 0.0)
    if not pair.size or not np.any(pair > 0):
        return 0.0, None
    at = int(np.argmax(pair))
    sign = 1.0 if (z[at] + z[at + 1]) >= 0 else -1.0
    return sign * float(pair[at]), at


def first_sustained(z: FloatArray, threshold: float) -> int | None:
    """Index of the first point of the first two-point run beyond ``threshold`` (the point itself for one point)."""
    a = np.abs(np.nan_to_num(z, nan=0.0))
    if a.size == 1:
        return 0 if a[0] >= threshold else None
    hits = np.flatnonzero(np.fmin(a[:-1], a[1:]) >= threshold)
    return int(hits[0]) if hits.size else None


def score_window(window: FloatArray, baseline: Baseline, threshold: float, start: int = 0) -> SeriesScore | None:
    """Robust z of the window's points against ``baseline``; None when the window has no finite value.

    With ``start`` > 0 the points before it are the window's own pre-onset level: a series already
    off its baseline there (a shift since the baseline was taken, or an older condition) is scored
    by how far it moved from that level, from ``start`` on.
    """
    finite = np.isfinite(window)
    if not finite[start:].any():
        return None
    z = (window - baseline.median) / baseline.spread
    pre = z[:start][np.isfinite(z[:start])]
    if pre.size:
        z = z - float(np.median(pre))
    z = z[start:]
    magnitude = np.where(np.isfinite(z), np.abs(z), 0.0)
    peak_index = int(np.argmax(magnitude))
    score, _ = sustained(z)
    onset = first_sustained(z, threshold)
    return SeriesScore(
        score,
        float(z[peak_index]),
        None if onset is None else onset + start,
        peak_index + start,
        float(window[peak_index + start]),
        baseline,
    )


def change_point(values: FloatArray, min_segment: int = 3) -> ChangePoint | None:
    """The most likely single mean shift of ``values`` (NaNs dropped), with its log Bayes factor; None if too short.

    >>> x = np.r_[np.zeros(50), np.ones(20) * 5] + np.sin(np.arange(70))
    >>> cp = change_point(x)
    >>> cp.index, cp.log_bayes_factor > 10
    (50, True)
    """
    idx = np.flatnonzero(np.isfinite(values))
    n = idx.size
    if n < 2 * min_segment:
        return None
    x = values[idx]
    # Noise level from first differences (robust to the shift itself): MAD of diffs / sqrt(2).
    d = np.diff(x)
    sigma = float(np.median(np.abs(d - np.median(d)))) * _MAD_TO_SIGMA / math.sqrt(2)
    if sigma <= 0.0:
        sigma = float(np.std(d)) / math.sqrt(2)
    if sigma <= 0.0:
        return None  # a constant series never changed
    x = (x - np.mean(x)) / sigma
    c1 = np.cumsum(x)
    c2 = np.cumsum(x * x)
    total1, total2 = float(c1[-1]), float(c2[-1])
    k = np.arange(min_segment, n - min_segment + 1)
    left1, left2 = c1[k - 1], c2[k - 1]
    right1, right2 = total1 - left1, total2 - left2
    right_n = n - k
    # Residual sum of squares with each side at its own mean; a flat prior on each mean adds -log(n_side)/2.
    rss = (left2 - left1 * left1 / k) + (right2 - right1 * right1 / right_n)
    log_like = -0.5 * rss - 0.5 * np.log(k) - 0.5 * np.log(right_n)
    rss0 = total2 - total1 * total1 / n
    log_none = -0.5 * rss0 - 0.5 * math.log(n)
    # Uniform prior over the positions: the evidence of "a change" averages their likelihoods.
    best = int(np.argmax(log_like))
    peak = float(log_like[best])
    log_change = peak + math.log(float(np.sum(np.exp(log_like - peak)))) - math.log(k.size)
    at = int(k[best])
    shift = float(right1[best] / right_n[best] - left1[best] / k[best])
    return ChangePoint(int(idx[at]), log_change - log_none + 0.5 * math.log(2 * math.pi), shift)
