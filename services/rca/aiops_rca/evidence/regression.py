"""How much of a series' movement its dependencies explain: regression on them over the baseline, residuals after.

CIRCA's regression-based hypothesis testing, as the engine uses it: a service's series is
fitted on the series of the services it calls (at the same step and one step before) over
the baseline; after onset, what the fit does not explain is what moved *by itself*. A caller
slowed down by its callee is explained away; the callee that slowed by itself is not.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["residuals"]

FloatArray = npt.NDArray[np.float64]

_RIDGE = 1e-3
"""Relative ridge penalty: keeps a fit on nearly collinear dependencies stable."""
_ROWS_PER_COEFFICIENT = 3


def _design(regressors: list[FloatArray]) -> FloatArray:
    columns = [np.ones_like(regressors[0])]
    for x in regressors:
        lagged = np.empty_like(x)
        lagged[0] = np.nan
        lagged[1:] = x[:-1]
        columns += [x, lagged]
    return np.column_stack(columns)


def residuals(y: FloatArray, regressors: list[FloatArray], base: npt.NDArray[np.bool_]) -> FloatArray | None:
    """``y`` minus its fit on ``regressors`` (each at t and t-1) learned where ``base`` holds; None if it cannot fit.

    Gaps (NaN) in a regressor are filled with its baseline median, so one missing dependency point
    does not hide the series; ``y``'s own gaps stay gaps.

    >>> x = np.r_[np.random.default_rng(0).normal(size=200), np.full(10, 8.0)]
    >>> y = 2 * x + np.random.default_rng(1).normal(scale=0.1, size=210)
    >>> base = np.arange(210) < 200
    >>> float(np.max(np.abs(residuals(y, [x], base)[200:]))) < 1
    True
    """
    if not regressors:
        return None
    filled = []
    for x in regressors:
        finite = np.isfinite(x[base])
        if not finite.any():
            continue
        median = float(np.median(x[base][finite]))
        filled.append(np.where(np.isfinite(x), x, median))
    if not filled:
        return None
    design = _design(filled)
    usable = base & np.isfinite(y) & np.all(np.isfinite(design), axis=1)
    if int(usable.sum()) < _ROWS_PER_COEFFICIENT * design.shape[1]:
        return None
    a, b = design[usable], y[usable]
    scale = np.std(a, axis=0)
    scale[scale == 0] = 1.0
    a_scaled = a / scale
    gram = a_scaled.T @ a_scaled
    gram[np.diag_indices_from(gram)] += _RIDGE * float(np.trace(gram)) / gram.shape[0]
    try:
        coef = np.linalg.solve(gram, a_scaled.T @ b) / scale
    except np.linalg.LinAlgError:
        return None
    design[0, 2::2] = design[0, 1::2]  # no previous step for the first row: use the same step
    fitted: FloatArray = design @ coef
    return y - fitted
