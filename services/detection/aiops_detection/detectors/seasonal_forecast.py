"""Tier 2, agile: a Holt-Winters one-step forecast that re-fits itself and jumps to level shifts.

Every ``refit_every`` points the detector looks for daily and weekly seasonality
in its history (``seasonality.detect_periods``) and fits statsmodels'
``ExponentialSmoothing`` (additive season when one is found) to the recent
history. Between fits it runs the same recursion point by point, so scoring is
O(1). When ``shift_after`` residuals in a row are large and of the same sign,
the level moves by their median at once instead of drifting there, the "agile"
part. The residual is scored like tier 1: the extremes of past residuals and a
record-calibrated robust z-score.
"""

from __future__ import annotations

import warnings
from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from statsmodels.tools.sm_exceptions import ConvergenceWarning
from statsmodels.tsa.holtwinters import ExponentialSmoothing

from aiops_detection.detectors.calibration import (
    ExtremeBand,
    RecordRatio,
    RobustStats,
    band_excess,
    band_score,
    band_score_one,
    lagging_extremes,
    lagging_robust_stats,
    ratio_score,
    ratio_score_one,
    record_ratio,
)
from aiops_detection.detectors.detector import Detector, FloatArray, as_panel
from aiops_detection.detectors.ring import Ring
from aiops_detection.detectors.seasonality import detect_periods

__all__ = ["AgileExplanation", "SeasonalForecastDetector"]

_MAD_TO_SIGMA = 1.4826


def _scale_floor(level: FloatArray | float) -> FloatArray:
    return np.asarray(1e-9 + 1e-6 * np.maximum(np.abs(level), 1.0), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class AgileExplanation:
    """Tier-2 evidence for every position of a block."""

    score: FloatArray
    forecast: FloatArray
    lower: FloatArray  # values between lower and upper would have scored below 0.5
    upper: FloatArray


class SeasonalForecastDetector(Detector[float]):
    """Tier 2: scores the one-step Holt-Winters forecast error of each point."""

    def __init__(
        self,
        periods: tuple[int, ...] = (),
        history: int = 8064,
        refit_every: int = 1000,
        residual_window: int = 100,
        band_window: int = 5000,
        record_window: int = 500,
        ratio_scale: float = 3.0,
        band_gain: float = 4.0,
        shift_after: int = 5,
        shift_z: float = 4.0,
        max_alpha: float = 1.0,
        min_history: int = 200,
    ) -> None:
        self.periods = periods
        """Candidate seasonal periods in points (e.g. ``seasonality.candidate_periods(step)``)."""
        self.history = history
        self.refit_every = refit_every
        self.residual_window = residual_window
        self.band_window = band_window
        self.record_window = record_window
        self.ratio_scale = ratio_scale
        self.band_gain = band_gain
        self.shift_after = shift_after
        self.shift_z = shift_z
        self.max_alpha = max_alpha
        self.min_history = min_history
        self._seen = 0
        self._values = Ring(history)
        self._fitted = False
        self.period: int | None = None
        """The seasonal period in use; None when no seasonality was found."""
        self._alpha = 0.5
        self._gamma = 0.0
        self._level = 0.0
        self._shift_scale = 0.0
        self._season: deque[float] = deque()
        self._run: list[float] = []
        self._stats = RobustStats(residual_window)
        self._band = ExtremeBand(band_window)
        self._record = RecordRatio(record_window)

    # -- model -----------------------------------------------------------------------------------------

    def _refit(self) -> None:
        values = self._values.array()
        found = detect_periods(values, self.periods)
        period = found[0] if found else None
        span = min(values.size, 4 * period) if period else min(values.size, 1000)
        recent = values[-span:]
        with warnings.catch_warnings():
            # Short or flat histories make the optimiser complain; the fit is still usable.
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            fit = ExponentialSmoothing(
                recent,
                trend=None,
                seasonal="add" if period else None,
                seasonal_periods=period,
                initialization_method="heuristic" if period else "estimated",
            ).fit()
        alpha = float(fit.params["smoothing_level"])
        gamma = float(fit.params["smoothing_seasonal"]) if period else 0.0
        self._alpha = min(alpha, self.max_alpha) if np.isfinite(alpha) else 0.5
        self._gamma = gamma if np.isfinite(gamma) else 0.0
        self._level = float(fit.level[-1])
        self._season = deque(np.asarray(fit.season[-period:], dtype=np.float64).tolist()) if period else deque()
        resid = np.asarray(fit.resid, dtype=np.float64)[-self.residual_window :]
        spread = _MAD_TO_SIGMA * float(np.median(np.abs(resid - np.median(resid))))
        self._shift_scale = max(spread, float(_scale_floor(self._level)))
        self._run = []
        self.period = period
        self._fitted = True

    def forecast(self) -> float:
        """One-step forecast of the next value; NaN before the first fit."""
        if not self._fitted:
            return np.nan
        return self._level + (self._season[0] if self._season else 0.0)

    def _update(self, x: float) -> None:
        """Holt-Winters recursion (statsmodels' additive form), plus the jump to a new level."""
        residual = x - self.forecast()
        seasonal = self._season.popleft() if self._season else 0.0
        previous_level = self._level
        self._level = self._alpha * (x - seasonal) + (1.0 - self._alpha) * previous_level
        if self.period:
            self._season.append(self._gamma * (x - previous_level) + (1.0 - self._gamma) * seasonal)
        # A run of large same-signed errors is a level shift: jump there instead of drifting for many points.
        large = abs(residual) >= self.shift_z * self._shift_scale
        if large and (not self._run or (self._run[-1] > 0) == (residual > 0)):
            self._run.append(residual)
        else:
            self._run = [residual] if large else []
        if len(self._run) >= self.shift_after:
            self._level += float(np.median(self._run))
            self._run = []

    def _step(self, x: float) -> None:
        """Learn ``x`` into the model only (the calibration is the caller's)."""
        if self._fitted:
            self._update(x)
        self._values.append(x)
        self._seen += 1
        if self._seen >= self.min_history and (self._seen - self.min_history) % self.refit_every == 0:
            self._refit()

    # -- detector API ----------------------------------------------------------------------------------

    def _z(self, residual: float) -> float:
        if not self._stats.ready:
            return 0.0
        median, scale = self._stats.stats()
        return abs(residual - median) / max(scale, float(_scale_floor(self._level)))

    def score_one(self, x: float) -> float:
        # Silent until a full window of residuals calibrates what a normal forecast error is.
        if not self._stats.ready:
            return 0.0
        residual = x - self.forecast()
        band = band_score_one(self._band.excess(residual), self.band_gain)
        return float(max(band, ratio_score_one(self._record.ratio(self._z(residual)), self.ratio_scale)))

    def learn_one(self, x: float) -> None:
        if self._fitted:
            residual = x - self.forecast()
            if self._stats.ready:
                self._record.learn(self._z(residual))
            self._band.learn(residual)
            self._stats.learn(residual)
        self._step(x)

    def expected_band(self) -> tuple[float, float]:
        """Next values scoring below 0.5: inside the past residual range and the z reach, around the forecast."""
        if not self._fitted or not self._stats.ready:
            return np.nan, np.nan
        median, scale = self._stats.stats()
        reach = 0.5 * self.ratio_scale * self._record.record * max(scale, float(_scale_floor(self._level)))
        centre = self.forecast()
        return max(centre + self._band.lower, centre + median - reach), min(
            centre + self._band.upper, centre + median + reach
        )

    # -- many series -----------------------------------------------------------------------------------

    def score_many(self, batch: npt.ArrayLike) -> FloatArray:
        return self.explain_many(batch).score

    def explain_many(self, batch: npt.ArrayLike) -> AgileExplanation:
        """Scores and evidence for a ``(series, time)`` block, each row streamed from a fresh state.

        The recursion runs point by point (it is sequential), the calibration of its
        residuals is vectorised.
        """
        panel = as_panel(batch)
        parts = [self._explain_row(row[~np.isnan(row)]) for row in panel]
        fields = []
        for k in range(4):
            block = np.full_like(panel, np.nan)
            for i, part in enumerate(parts):
                block[i, : part[k].size] = part[k]
            fields.append(block)
        return AgileExplanation(*fields)

    def _explain_row(self, values: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        n = values.size
        model = self.clone()
        forecast = np.full(n, np.nan)
        level = np.full(n, np.nan)
        for t, x in enumerate(values.tolist()):
            forecast[t] = model.forecast()
            level[t] = model._level
            model._step(x)
        zeros = np.zeros(n)
        fitted = np.flatnonzero(~np.isnan(forecast))
        if fitted.size == 0:
            nan = np.full(n, np.nan)
            return zeros, forecast, nan, nan
        first = int(fitted[0])
        residual = (values - forecast)[None, :]
        median, scale = lagging_robust_stats(residual, self.residual_window, first=first)
        scale = np.maximum(scale, _scale_floor(level))
        z = np.nan_to_num(np.abs(residual - median) / scale, nan=0.0)
        # Before the first fit there is no residual stream; repeating its first residual (and a zero z)
        # there leaves every lagging window over the real stream unchanged.
        filled = residual.copy()
        filled[:, :first] = residual[0, first]
        lower_band, upper_band = lagging_extremes(filled, self.band_window)
        excess = band_excess(filled, self.band_window)
        excess[:, first] = np.nan
        # The record only starts once z exists, a full residual window after the first fit.
        ready = first + self.residual_window
        z[:, :ready] = 0.0
        _, record = lagging_extremes(z, self.record_window)
        ratio = record_ratio(z, self.record_window)
        ratio[:, : ready + 1] = 0.0
        score = np.maximum(band_score(excess, self.band_gain), ratio_score(ratio, self.ratio_scale))[0]
        score[:ready] = 0.0
        reach = 0.5 * self.ratio_scale * np.nan_to_num(record, nan=0.0) * scale
        lower = np.maximum(forecast + lower_band, forecast + median - reach)[0]
        upper = np.minimum(forecast + upper_band, forecast + median + reach)[0]
        lower[: first + 1] = np.nan
        upper[: first + 1] = np.nan
        return score, forecast, lower, upper
