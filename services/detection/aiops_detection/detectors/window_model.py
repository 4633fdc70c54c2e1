"""Tier 3, robust: seasonal-trend decomposition plus a torch autoencoder over windows, scored in batches.

Every ``refit_every`` points the detector decomposes its history with statsmodels
(STL for one detected period, MSTL for daily and weekly together), removes the
seasonal part, normalises what is left by its median and interquartile range, and
trains a small autoencoder on the sliding windows of it. A point's surprise is the
reconstruction error of the window that ends on it: patterns unlike anything in
the history reconstruct badly, whatever their level. Errors are calibrated as in
the other tiers (extremes of past errors, record ratio).

The model runs on CUDA when ``torch.cuda.is_available()``, else on the CPU, where
training is seeded and deterministic. ``score_many`` scores every window between
two refits in one batch.
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from numpy.lib.stride_tricks import sliding_window_view
from statsmodels.tsa.seasonal import MSTL, STL

from aiops_detection.detectors.calibration import (
    ExtremeBand,
    RecordRatio,
    band_excess,
    band_score,
    band_score_one,
    ratio_score,
    ratio_score_one,
    record_ratio,
)
from aiops_detection.detectors.detector import Detector, FloatArray, as_panel
from aiops_detection.detectors.ring import Ring
from aiops_detection.detectors.seasonality import detect_periods

__all__ = ["WindowModelDetector", "resolve_device"]


def resolve_device(device: str | None = None) -> torch.device:
    """The requested device, or CUDA when available and the CPU otherwise."""
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class _Autoencoder(torch.nn.Module):
    def __init__(self, window: int, hidden: int, latent: int) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(window, hidden),
            torch.nn.Tanh(),
            torch.nn.Linear(hidden, latent),
            torch.nn.Tanh(),
            torch.nn.Linear(latent, hidden),
            torch.nn.Tanh(),
            torch.nn.Linear(hidden, window),
        )

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(windows)
        return out


@dataclass(slots=True)
class _Fit:
    """What one refit learned: where it happened, the seasonal profiles, the normalisation and the model."""

    at: int  # index of the first point scored by this fit
    profiles: list[FloatArray]  # one seasonal cycle per period, starting at ``at``
    centre: float
    scale: float
    model: _Autoencoder

    def normalise(self, values: FloatArray, index: npt.NDArray[np.int64]) -> FloatArray:
        out: FloatArray = (values - _season(self.profiles, self.at, index) - self.centre) / self.scale
        return out


def _season(profiles: list[FloatArray], at: int, index: npt.NDArray[np.int64]) -> FloatArray:
    """Seasonal part at absolute positions ``index``, from profiles whose position 0 is ``at`` (mod period)."""
    total = np.zeros(index.shape, dtype=np.float64)
    for profile in profiles:
        total += profile[(index - at) % profile.size]
    return total


def _loess_jumps(period: int) -> dict[str, int]:
    """Evaluate STL's trend and low-pass smoothers every ~10% of their span and interpolate between.

    Cleveland et al. (1990) suggest this; it changes the decomposition very little and
    makes it tens of times faster for long periods (288 points a day at 5 minutes).
    """
    trend = math.ceil(1.5 * period / (1.0 - 1.5 / 7))  # statsmodels' default trend span for seasonal=7
    low_pass = period + 1
    return {"trend_jump": max(1, trend // 10), "low_pass_jump": max(1, low_pass // 10)}


class WindowModelDetector(Detector[float]):
    """Tier 3: reconstruction error of a window autoencoder trained on the deseasonalised history."""

    def __init__(
        self,
        window: int = 10,
        periods: tuple[int, ...] = (),
        history: int = 3000,
        refit_every: int = 1000,
        hidden: int = 16,
        latent: int = 3,
        epochs: int = 150,
        learning_rate: float = 1e-2,
        seed: int = 0,
        device: str | None = None,
        band_window: int = 5000,
        record_window: int = 500,
        ratio_scale: float = 3.0,
        band_gain: float = 4.0,
        min_history: int = 200,
        calibration_warmup: int = 100,
    ) -> None:
        self.window = window
        self.periods = periods
        """Candidate seasonal periods in points (e.g. ``seasonality.candidate_periods(step)``)."""
        self.history = history
        self.refit_every = refit_every
        self.hidden = hidden
        self.latent = latent
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.seed = seed
        self.device = device
        self.band_window = band_window
        self.record_window = record_window
        self.ratio_scale = ratio_scale
        self.band_gain = band_gain
        self.min_history = min_history
        self.calibration_warmup = calibration_warmup
        self._device = resolve_device(device)
        # Period detection and the decomposition need several cycles, the autoencoder only ``history``.
        # (and must keep the points whose errors are still pending, at most one refit interval).
        self._values = Ring(max([history, refit_every + window, *(4 * p for p in periods)]))
        self._seen = 0
        self._fits = 0
        self._fit: _Fit | None = None
        self._errors_seen = 0
        self._pending = 0  # points learned whose errors are not computed yet (see ``_flush``)
        self._band = ExtremeBand(band_window)
        self._record = RecordRatio(record_window)

    # -- model -----------------------------------------------------------------------------------------

    def _seasonal_profiles(self, values: FloatArray, periods: tuple[int, ...]) -> list[FloatArray]:
        found = sorted(periods)
        if not found:
            return []
        jumps = _loess_jumps(found[0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            if len(found) == 1:
                seasonal = np.asarray(STL(values, period=found[0], robust=True, **jumps).fit().seasonal)[None, :]
            else:
                fit = MSTL(values, periods=found, iterate=1, stl_kwargs={"robust": True, **jumps}).fit()
                seasonal = np.asarray(fit.seasonal).T
        # The last cycle of each component: its position 0 is ``period`` points before the next one.
        return [component[-period:] for component, period in zip(seasonal, found, strict=True)]

    def _refit(self) -> None:
        values = self._values.array()
        found = detect_periods(values, self.periods)
        # The decomposition needs a few cycles of the periods found, the autoencoder only ``history`` points.
        values = values[-max([self.history, *(3 * p for p in found)]) :]
        at = self._seen
        index = np.arange(at - values.size, at)
        profiles = self._seasonal_profiles(values, found)
        rest = values - _season(profiles, at, index)
        q25, centre, q75 = np.quantile(rest, [0.25, 0.5, 0.75])
        scale = max(float(q75 - q25), 1e-9 + 1e-6 * max(abs(float(centre)), 1.0))
        normalised = (rest[-self.history :] - centre) / scale
        train = torch.as_tensor(sliding_window_view(normalised, self.window).copy(), dtype=torch.float32)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed + self._fits)
            model = _Autoencoder(self.window, self.hidden, self.latent)
        model = model.to(self._device)
        train = train.to(self._device)
        optimiser = torch.optim.Adam(model.parameters(), lr=self.learning_rate)
        # Full-batch steps: no sampling order, so CPU training is reproducible bit for bit.
        for _ in range(self.epochs):
            optimiser.zero_grad()
            loss = torch.mean((model(train) - train) ** 2)
            loss.backward()  # type: ignore[no-untyped-call]  # torch ships this method without annotations
            optimiser.step()
        model.eval()
        self._fit = _Fit(at, profiles, float(centre), scale, model)
        self._fits += 1

    def _errors(self, fit: _Fit, values: FloatArray, index: npt.NDArray[np.int64]) -> FloatArray:
        """Reconstruction error of every complete window in ``values`` (which end at ``index[window-1:]``)."""
        windows = sliding_window_view(fit.normalise(values, index), self.window)
        with torch.no_grad():
            batch = torch.as_tensor(windows.copy(), dtype=torch.float32, device=self._device)
            error = torch.sqrt(torch.mean((fit.model(batch) - batch) ** 2, dim=1))
        return error.cpu().numpy().astype(np.float64)

    def __getstate__(self) -> dict[str, Any]:
        # Weights travel on the CPU, so a model trained on a GPU loads on a CPU-only worker.
        state = self.__dict__.copy()
        if self._fit is not None and self._device.type != "cpu":
            state["_fit"] = replace(self._fit, model=copy.deepcopy(self._fit.model).to("cpu"))
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        # The loading machine decides where the model runs (``device`` unset: CUDA when present).
        self._device = resolve_device(self.device)
        if self._fit is not None:
            self._fit.model.to(self._device)

    def _error_one(self, x: float) -> float:
        assert self._fit is not None
        # Only the last ``window - 1`` points: copying the whole history per point is the hot path.
        values = np.append(self._values.tail(self.window - 1), x)
        return float(self._errors(self._fit, values, np.arange(self._seen - values.size + 1, self._seen + 1))[0])

    # -- detector API ----------------------------------------------------------------------------------

    def _flush(self) -> None:
        """Compute, in one batch, the errors of the points learned since the last flush and calibrate on them.

        Learning stays cheap (append a value) and the model runs in batches even when
        points arrive one by one; every error is still computed by the fit that was
        current when its point was learned, because a refit flushes first.
        """
        if not self._pending:
            return
        assert self._fit is not None
        start = self._seen - self._pending - self.window + 1
        values = self._values.tail(self._seen - start)
        for error in self._errors(self._fit, values, np.arange(start, self._seen)).tolist():
            self._band.learn(error)
            self._record.learn(error)
        self._errors_seen += self._pending
        self._pending = 0

    def score_one(self, x: float) -> float:
        self._flush()
        if self._fit is None or self._errors_seen < self.calibration_warmup:
            return 0.0
        error = self._error_one(x)
        band = band_score_one(self._band.excess(error, upper_only=True), self.band_gain)
        return float(max(band, ratio_score_one(self._record.ratio(error), self.ratio_scale)))

    def learn_one(self, x: float) -> None:
        self._values.append(x)
        self._seen += 1
        if self._fit is not None:
            self._pending += 1
        if self._seen >= self.min_history and (self._seen - self.min_history) % self.refit_every == 0:
            self._flush()
            self._refit()

    # -- many series -----------------------------------------------------------------------------------

    def score_many(self, batch: npt.ArrayLike) -> FloatArray:
        panel = as_panel(batch)
        out = np.full_like(panel, np.nan)
        for i, row in enumerate(panel):
            values = row[~np.isnan(row)]
            out[i, : values.size] = self._score_row(values)
        return out

    def _score_row(self, values: FloatArray) -> FloatArray:
        n = values.size
        model = self.clone()
        error = np.full(n, np.nan)
        refits = list(range(self.min_history, n, self.refit_every))
        for k, at in enumerate(refits):
            model._values.extend(values[model._seen : at].tolist())
            model._seen = at
            model._refit()
            fit = model._fit
            assert fit is not None
            stop = refits[k + 1] if k + 1 < len(refits) else n
            first = at - self.window + 1
            error[at:stop] = self._errors(fit, values[first:stop], np.arange(first, stop))
        score = np.zeros(n)
        if not refits:
            return score
        start = refits[0]
        ready = start + self.calibration_warmup
        # Before the first fit there are no errors; repeating the first one there leaves every lagging
        # window over the real error stream unchanged.
        filled = error.copy()
        filled[:start] = error[start]
        excess = band_excess(filled[None, :], self.band_window, upper_only=True)[0]
        ratio = record_ratio(filled[None, :], self.record_window)[0]
        score = np.maximum(band_score(excess, self.band_gain), ratio_score(ratio, self.ratio_scale))
        score[:ready] = 0.0
        return score
