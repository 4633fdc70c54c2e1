"""Granger tests between pairs of series: lag by AIC, statsmodels' F test, Benjamini-Hochberg over the call.

How a pair ``(x, y)`` is tested ("does x help predict y?"):

1. Missing data: non-finite values count as missing; interior gaps of at most :data:`MAX_GAP` points
   are filled by linear interpolation (a scrape or two lost), longer gaps stay missing and every
   regression row that would read a missing value is dropped, so no row ever mixes lags across a gap.
2. Stationarity: each series gets a quick augmented Dickey-Fuller test (constant, ``max_lag`` lags,
   MacKinnon's p-value from statsmodels). When either series of the pair keeps its unit root at 5 %,
   both are tested on first differences, so two trending or random-walk series do not look causal
   (spurious regression), and both directions of a pair see the same transformation. Differences
   also turn a level shift at onset into a spike, whose timing is what the test compares.
3. Skipped, without exception or warning: a series (or the pair's overlap) that is constant to
   within :data:`_FLAT` of its magnitude, fewer than ``min_points`` points where both are present,
   no lag ``p`` with more than ``3 * p + 10`` usable rows, collinear regressors, or a perfect fit.
4. Lag: the order of the pair's VAR, ``[y, x]_t ~ 1 + y_{t-1..p} + x_{t-1..p}``, by AIC for ``p = 1..P``
   on the one sample usable at ``P`` (the largest lag the data allow, up to ``max_lag``), fitted with
   numpy least squares; the smaller lag wins ties. Both equations count, as in statsmodels'
   ``VAR.select_order``: the AIC of y's equation alone favours the lags where x happens to fit y's
   noise, and rejected about 9.5 % of 1000 independent pairs at 5 %; the system's AIC, 6-7 %.
5. Test: at that lag, statsmodels' OLS fits the restricted (``y`` lags only) and unrestricted models on
   every row usable at that lag, and ``compare_f_test`` gives the ssr-based F test, the same statistic
   as ``grangercausalitytests``' ``ssr_ftest``. ``grangercausalitytests`` itself is not called: it fits
   three models per lag for every lag up to the maximum and builds summaries we would discard,
   about 7.7 ms a pair at ``max_lag=6`` against the engine's budget of about 2 s for ~200 pairs.
6. Benjamini-Hochberg (statsmodels' ``fdrcorrection``) adjusts the p-values of every test of the call.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from statsmodels.regression.linear_model import OLS
from statsmodels.stats.multitest import fdrcorrection
from statsmodels.tsa.adfvalues import mackinnonp

__all__ = ["MAX_GAP", "GrangerTest", "direction", "test_pairs"]

_Array = npt.NDArray[np.float64]

MAX_GAP = 3
"""Interior runs of missing points up to this long are interpolated; longer ones drop their rows."""

_ADF_ALPHA = 0.05
# Relative range under which a series counts as constant: rounding noise on a flat series is ~1e-16,
# and a gauge of 1e12 that moves by 1000 still counts as moving.
_FLAT = 1e-10
# Condition number of the (standardized) design above which its regressors count as collinear.
_MAX_COND = 1e8
# Unrestricted residuals this small against the restricted ones mean a perfect fit: F is meaningless.
_PERFECT = 1e-12


@dataclass(frozen=True, slots=True)
class GrangerTest:
    """The test of whether ``cause`` Granger-causes ``effect``."""

    cause: str
    """Label of the series tested as the cause (the caller's, e.g. ``"payment:red.latency_s"``)."""
    effect: str
    lag: int
    """Lag chosen by AIC (1..max_lag)."""
    f_stat: float
    p_value: float
    """Of the ssr-based F test at ``lag``."""
    q_value: float
    """Benjamini-Hochberg adjusted over every test of the call."""
    significant: bool
    """``q_value <= alpha``."""
    n: int
    """Regression rows (points) used by the test."""


@dataclass(frozen=True, slots=True)
class _Series:
    values: _Array
    flat: bool
    unit_root: bool


@dataclass(frozen=True, slots=True)
class _Raw:
    cause: str
    effect: str
    lag: int
    f_stat: float
    p_value: float
    n: int


def test_pairs(
    pairs: Sequence[tuple[str, str, _Array, _Array]],
    *,
    max_lag: int = 6,
    alpha: float = 0.05,
    min_points: int = 30,
) -> list[GrangerTest]:
    """For each (cause_label, effect_label, x_cause, y_effect) (equal-length arrays on one grid, NaN where missing):
    does x Granger-cause y? One result per pair that could be tested, in input order.

    Pairs that cannot be tested (see the module's notes) are left out and do not count in the
    Benjamini-Hochberg adjustment. Input arrays are not modified.
    """
    if max_lag < 1:
        raise ValueError(f"max_lag must be at least 1, got {max_lag}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    # The same array usually appears in several pairs (a -> b and b -> a): prepare it once. The
    # cache keeps the array itself, so an id cannot be reused by another object during the call.
    prepared: dict[int, tuple[_Array, _Series]] = {}

    def prepare(arr: _Array) -> _Series:
        hit = prepared.get(id(arr))
        if hit is not None and hit[0] is arr:
            return hit[1]
        series = _prepare(arr, max_lag)
        prepared[id(arr)] = (arr, series)
        return series

    raws: list[_Raw] = []
    for cause, effect, x_arr, y_arr in pairs:
        if np.shape(x_arr) != np.shape(y_arr) or np.ndim(x_arr) != 1:
            raise ValueError(
                f"{cause} -> {effect}: series must be 1-d and of equal length,"
                f" got shapes {np.shape(x_arr)} and {np.shape(y_arr)}"
            )
        raw = _test_one(cause, effect, prepare(x_arr), prepare(y_arr), max_lag, min_points)
        if raw is not None:
            raws.append(raw)
    if not raws:
        return []
    _, q_values = fdrcorrection(np.array([r.p_value for r in raws]), alpha=alpha, method="indep")
    return [
        GrangerTest(
            cause=r.cause,
            effect=r.effect,
            lag=r.lag,
            f_stat=r.f_stat,
            p_value=r.p_value,
            q_value=float(q),
            significant=bool(q <= alpha),
            n=r.n,
        )
        for r, q in zip(raws, q_values, strict=True)
    ]


# Not a test case, whatever its name: pytest would collect it from any test module importing it.
test_pairs.__test__ = False  # type: ignore[attr-defined]


def direction(tests: Sequence[GrangerTest], a: str, b: str) -> int:
    """+1 when a -> b is significant and b -> a is not, -1 for the reverse, 0 otherwise.

    A direction that was not tested (skipped, or not asked for) counts as not significant.
    """
    forward = any(t.significant for t in tests if t.cause == a and t.effect == b)
    backward = any(t.significant for t in tests if t.cause == b and t.effect == a)
    return int(forward) - int(backward)


def _prepare(arr: _Array, max_lag: int) -> _Series:
    values = _fill_short_gaps(np.array(arr, dtype=np.float64))
    flat = _is_flat(values)
    return _Series(values, flat, unit_root=not flat and _has_unit_root(values, max_lag))


def _fill_short_gaps(v: _Array) -> _Array:
    """Non-finite -> NaN, then interior NaN runs of at most :data:`MAX_GAP` interpolated linearly (in place)."""
    v[~np.isfinite(v)] = np.nan
    ok = ~np.isnan(v)
    if ok.all() or not ok.any():
        return v
    idx = np.arange(v.size)
    before = np.maximum.accumulate(np.where(ok, idx, -1))
    after = np.minimum.accumulate(np.where(ok, idx, v.size)[::-1])[::-1]
    fill = ~ok & (before >= 0) & (after < v.size) & (after - before - 1 <= MAX_GAP)
    if fill.any():
        v[fill] = np.interp(idx[fill], idx[ok], v[ok])
    return v


def _is_flat(v: _Array) -> bool:
    present = v[~np.isnan(v)]
    if present.size < 2:
        return True
    spread = float(present.max() - present.min())
    return spread <= _FLAT * float(np.abs(present).max())


def _standardize(v: _Array, rows: npt.NDArray[np.bool_]) -> _Array:
    """Z-scores over ``rows``: keeps the least-squares designs well conditioned, and F and t are invariant to it."""
    sub = v[rows]
    scaled: _Array = (v - sub.mean()) / sub.std()
    return scaled


def _has_unit_root(v: _Array, lags: int) -> bool:
    """Augmented Dickey-Fuller with a constant: True unless a unit root is rejected at :data:`_ADF_ALPHA`."""
    present = ~np.isnan(v)
    v = _standardize(v, present)
    d = np.diff(v)
    size = v.size
    if size < 2 * lags + 12:
        return True
    # Rows t = lags+1 .. size-1: dv_t ~ 1 + v_{t-1} + dv_{t-1..t-lags}, with dv_t = d[t-1].
    dy = d[lags:]
    cols = [np.ones_like(dy), v[lags:-1]]
    cols.extend(d[lags - i : size - 1 - i] for i in range(1, lags + 1))
    design = np.column_stack(cols)
    rows = np.isfinite(dy) & np.isfinite(design).all(axis=1)
    design, dy = design[rows], dy[rows]
    n, k = design.shape
    if n <= k + 10:
        return True
    coef, _, rank, _ = np.linalg.lstsq(design, dy, rcond=None)
    if rank < k:
        return True
    resid = dy - design @ coef
    s2 = float(resid @ resid) / (n - k)
    try:
        var_b = float(np.linalg.inv(design.T @ design)[1, 1]) * s2
    except np.linalg.LinAlgError:
        return True
    if not var_b > 0.0:
        return True
    p_value = float(mackinnonp(float(coef[1]) / math.sqrt(var_b), regression="c", N=1))
    return p_value > _ADF_ALPHA


def _lagged(x: _Array, y: _Array, p: int, start: int, *, system: bool = False) -> tuple[_Array, _Array]:
    """Targets and the design ``[1, y_{t-1..p}, x_{t-1..p}]`` for t = start..end, rows reading a gap dropped.

    The target is ``y_t``, or ``[y_t, x_t]`` for the ``system`` (both equations of the pair's VAR).
    """
    size = y.size
    cols = [np.ones(size - start)]
    cols.extend(y[start - i : size - i] for i in range(1, p + 1))
    cols.extend(x[start - i : size - i] for i in range(1, p + 1))
    design = np.column_stack(cols)
    rows = np.isfinite(y[start:]) & np.isfinite(design).all(axis=1)
    if system:
        rows &= np.isfinite(x[start:])
        return np.column_stack([y[start:], x[start:]])[rows], design[rows]
    return y[start:][rows], design[rows]


def _columns(p: int, p_max: int) -> list[int]:
    """Columns of the model at lag ``p`` inside a design built at lag ``p_max``."""
    return [0, *range(1, 1 + p), *range(1 + p_max, 1 + p_max + p)]


def _test_one(cause: str, effect: str, xs: _Series, ys: _Series, max_lag: int, min_points: int) -> _Raw | None:
    if xs.flat or ys.flat:
        return None
    x, y = xs.values, ys.values
    if xs.unit_root or ys.unit_root:
        x, y = np.diff(x), np.diff(y)
    both = ~np.isnan(x) & ~np.isnan(y)
    if int(both.sum()) < max(min_points, 3):
        return None
    if _is_flat(np.where(both, x, np.nan)) or _is_flat(np.where(both, y, np.nan)):
        return None
    x, y = _standardize(x, both), _standardize(y, both)

    # The largest lag the data allow, and the one sample every candidate lag is compared on.
    p_max = min(max_lag, x.size // 4)
    while p_max >= 1:
        targets, design = _lagged(x, y, p_max, p_max, system=True)
        if targets.shape[0] > 3 * p_max + 10:
            break
        p_max -= 1
    else:
        return None
    singular = np.linalg.svd(design, compute_uv=False)
    if not singular[-1] > singular[0] / _MAX_COND:
        return None

    # AIC of the pair's VAR (log det of both equations' residual covariance), not of y's equation
    # alone: see the module's notes. It also gives x -> y and y -> x the same lag.
    n = targets.shape[0]
    best_lag, best_aic = 0, math.inf
    for p in range(1, p_max + 1):
        sub = design[:, _columns(p, p_max)]
        coef, _, _, _ = np.linalg.lstsq(sub, targets, rcond=None)
        resid = targets - sub @ coef
        cov = resid.T @ resid / n
        det = float(cov[0, 0] * cov[1, 1] - cov[0, 1] ** 2)
        if not det > _PERFECT:
            return None
        aic = n * math.log(det) + 2 * 2 * (2 * p + 1)
        if aic < best_aic:
            best_lag, best_aic = p, aic

    target, design = _lagged(x, y, best_lag, best_lag)
    unrestricted = OLS(target, design).fit()
    restricted = OLS(target, design[:, : 1 + best_lag]).fit()
    if not float(unrestricted.ssr) > _PERFECT * float(restricted.ssr):
        return None
    f_stat, p_value, _ = unrestricted.compare_f_test(restricted)
    f_stat, p_value = float(f_stat), float(p_value)
    if not (math.isfinite(f_stat) and math.isfinite(p_value)):
        return None
    return _Raw(cause, effect, best_lag, f_stat, p_value, int(target.size))
