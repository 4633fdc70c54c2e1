"""Numenta Anomaly Benchmark scoring (Ahmad et al., Neurocomputing 2017), vectorised with numpy.

The rules follow NAB's published scorer: the first 15% of each file's rows (at most
750) is probationary and unscored; every row gets a "sweep" weight from the scaled
sigmoid of its position relative to the nearest window on its left; inside a window
only the earliest detection counts; a missed window costs the profile's FN weight;
one threshold is chosen per detector and profile for the whole corpus jointly; the
total is normalised so that the null detector scores 0 and a perfect one 100.

>>> import numpy as np
>>> series = LabelledSeries.from_arrays("toy.csv", np.arange(20), windows=((14, 17),))
>>> scorer = NabScorer([series])
>>> detection = np.zeros(20)
>>> detection[14] = 1.0
>>> round(scorer.score({"toy.csv": detection}, "standard").normalised, 2)
100.0
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = [
    "PROFILES",
    "CostProfile",
    "LabelledSeries",
    "NabScore",
    "NabScorer",
    "load_corpus",
    "load_detector_results",
    "load_published_scores",
    "scaled_sigmoid",
]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class CostProfile:
    """Weights of one NAB application profile."""

    name: str
    tp_weight: float
    fp_weight: float
    fn_weight: float


PROFILES: Mapping[str, CostProfile] = {
    "standard": CostProfile("standard", tp_weight=1.0, fp_weight=0.11, fn_weight=1.0),
    "reward_low_FP_rate": CostProfile("reward_low_FP_rate", tp_weight=1.0, fp_weight=0.22, fn_weight=1.0),
    "reward_low_FN_rate": CostProfile("reward_low_FN_rate", tp_weight=1.0, fp_weight=0.11, fn_weight=2.0),
}

# Row markers in the window-id column: outside every window, or inside the probationary period.
_OUTSIDE = -1
_PROBATION = -2


def scaled_sigmoid(position: npt.ArrayLike) -> FloatArray:
    """NAB's reward curve: +0.987 at a window's left edge, 0 at its right edge, towards -1 after it."""
    x = np.asarray(position, dtype=np.float64)
    value = 2.0 / (1.0 + np.exp(5.0 * x)) - 1.0
    return np.where(x > 3.0, -1.0, value)


_MAX_TP = float(scaled_sigmoid(-1.0))


@dataclass(frozen=True, slots=True)
class LabelledSeries:
    """One NAB data file: its rows and its anomaly windows as inclusive row ranges."""

    name: str
    timestamps: npt.NDArray[np.datetime64]
    values: FloatArray
    windows: tuple[tuple[int, int, int], ...]
    """``(first row, last row, width)``; width comes from the end's first occurrence, as in NAB."""

    @classmethod
    def from_arrays(cls, name: str, values: npt.ArrayLike, windows: Iterable[tuple[int, int]] = ()) -> LabelledSeries:
        """A series with one row per minute and windows given as inclusive row ranges."""
        vals = np.asarray(values, dtype=np.float64)
        stamps = np.datetime64("2020-01-01T00:00") + np.arange(vals.size).astype("timedelta64[m]")
        return cls(name, stamps, vals, tuple((a, b, b - a + 1) for a, b in windows))

    def __len__(self) -> int:
        return int(self.values.shape[0])

    @property
    def probation(self) -> int:
        """Rows that are learned from but never scored: 15% of the file, at most 750."""
        return int(min(math.floor(0.15 * len(self)), 0.15 * 5000))


def _window_rows(timestamps: npt.NDArray[np.datetime64], limits: Sequence[Sequence[str]]) -> list[tuple[int, int, int]]:
    """Map window limits to rows exactly as NAB's row-by-row walk does, duplicated timestamps included."""
    rows: list[tuple[int, int, int]] = []
    cursor = 0
    for start_text, end_text in limits:
        start, end = np.datetime64(pd.Timestamp(start_text)), np.datetime64(pd.Timestamp(end_text))
        # NAB enters a window on the first row whose time equals its start...
        first = cursor + int(np.flatnonzero(timestamps[cursor:] == start)[0])
        # ...takes its width from the first occurrence of the end time in the whole file...
        width = int(np.flatnonzero(timestamps == end)[0]) - first + 1
        # ...and leaves it on the first row at or after entry whose time equals its end.
        last = first + int(np.flatnonzero(timestamps[first:] == end)[0])
        rows.append((first, last, width))
        cursor = last + 1
    return rows


def load_corpus(nab_dir: Path | str) -> list[LabelledSeries]:
    """All labelled NAB files under ``nab_dir`` (``data/`` and ``labels/combined_windows.json``), sorted by name."""
    root = Path(nab_dir)
    windows: dict[str, list[list[str]]] = json.loads((root / "labels" / "combined_windows.json").read_text())
    corpus = []
    for name in sorted(windows):
        frame = pd.read_csv(root / "data" / name)
        stamps = pd.to_datetime(frame["timestamp"]).to_numpy(dtype="datetime64[ns]")
        values = frame["value"].to_numpy(dtype=np.float64)
        corpus.append(LabelledSeries(name, stamps, values, tuple(_window_rows(stamps, windows[name]))))
    return corpus


def _result_path(root: Path, detector: str, name: str) -> Path:
    group, _, file_name = name.partition("/")
    return root / "results" / detector / group / f"{detector}_{file_name}"


def load_detector_results(nab_dir: Path | str, detector: str, names: Iterable[str]) -> dict[str, FloatArray]:
    """The ``anomaly_score`` column of a detector's published per-row results, by data file name."""
    root = Path(nab_dir)
    return {
        name: pd.read_csv(_result_path(root, detector, name))["anomaly_score"].to_numpy(dtype=np.float64)
        for name in names
    }


def load_published_scores(nab_dir: Path | str) -> dict[str, dict[str, float]]:
    """``results/final_results.json``: normalised score by detector and profile."""
    published: dict[str, dict[str, float]] = json.loads((Path(nab_dir) / "results" / "final_results.json").read_text())
    return published


@dataclass(frozen=True, slots=True)
class NabScore:
    """Result of the threshold sweep for one detector and profile."""

    profile: str
    threshold: float
    raw: float
    normalised: float
    tp: int
    fp: int
    fn: int
    """Counts at the chosen threshold: detected windows, false-positive rows, missed windows."""
    tp_reward: float = 0.0
    fp_cost: float = 0.0
    fn_cost: float = 0.0
    """Where ``raw`` comes from: ``raw == tp_reward - fp_cost - fn_cost``."""

    @property
    def lateness_cost(self) -> float:
        """Reward the detected windows lost by being detected after their first row."""
        return PROFILES[self.profile].tp_weight * self.tp - self.tp_reward


class NabScorer:
    """Scores per-row anomaly scores of every file of a corpus, NAB-style, for any profile."""

    def __init__(self, corpus: Sequence[LabelledSeries]) -> None:
        self.corpus = list(corpus)
        self.n_windows = sum(len(series.windows) for series in self.corpus)
        position, window, tp_row = self._positions()
        keep = window != _PROBATION
        self._keep = keep
        self._position = position[keep]
        self._window = window[keep]
        self._tp_row = tp_row[keep]
        self.scorable_windows = int(np.unique(self._window[self._window >= 0]).size)
        """Windows with at least one row after the probationary period; the others are never scored."""
        self._weights: dict[CostProfile, FloatArray] = {}

    def _positions(self) -> tuple[FloatArray, npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        """Relative position of every corpus row (negative inside windows), its window id, and in-window flag."""
        positions, windows, inside = [], [], []
        window_id = 0
        for series in self.corpus:
            n = len(series)
            rows = np.arange(n)
            position = np.full(n, np.inf)  # before the first window: "really far away", reward -1
            window = np.full(n, _OUTSIDE, dtype=np.int64)
            for first, last, width in series.windows:
                span = slice(first, last + 1)
                position[span] = -(first + width - 1 - rows[span] + 1) / width
                window[span] = window_id
                after = slice(last + 1, n)
                position[after] = (rows[after] - last) / (width - 1)
                window_id += 1
            window[: series.probation] = _PROBATION
            positions.append(position)
            windows.append(window)
            inside.append(window >= 0)
        return np.concatenate(positions), np.concatenate(windows), np.concatenate(inside)

    def _sweep_weights(self, profile: CostProfile) -> FloatArray:
        """Profile-weighted sweep score of every scorable row."""
        weight = self._weights.get(profile)
        if weight is None:
            reward = scaled_sigmoid(self._position)
            # NAB rescales true positives so that a detection on a window's first row earns exactly tp_weight.
            weight = np.where(self._tp_row, reward * profile.tp_weight / _MAX_TP, reward * profile.fp_weight)
            self._weights[profile] = weight
        return weight

    def _concatenate(self, anomaly_scores: Mapping[str, npt.ArrayLike]) -> FloatArray:
        parts = []
        for series in self.corpus:
            scores = np.asarray(anomaly_scores[series.name], dtype=np.float64)
            if scores.shape != (len(series),):
                raise ValueError(f"{series.name}: {scores.shape[0]} scores for {len(series)} rows")
            parts.append(scores)
        joined: FloatArray = np.concatenate(parts)[self._keep]
        return joined

    def score(
        self,
        anomaly_scores: Mapping[str, npt.ArrayLike],
        profile: str | CostProfile,
        search: Literal["sweep", "twiddle"] = "sweep",
    ) -> NabScore:
        """The best score over thresholds (detection: ``score >= threshold``) for the whole corpus.

        ``sweep`` tries every distinct score, as NAB has done since its sweeper (v1.1);
        ``twiddle`` is the hill climb of NAB v1.0, which produced the published
        numenta, windowedGaussian and null results and can stop on a local optimum.
        """
        curve = self._curve(anomaly_scores, profile)
        if search == "twiddle":
            return curve.at(_twiddle(lambda threshold: curve.at(threshold).raw))
        return curve.best()

    def score_at(
        self, anomaly_scores: Mapping[str, npt.ArrayLike], profile: str | CostProfile, threshold: float
    ) -> NabScore:
        """The score at one given threshold."""
        return self._curve(anomaly_scores, profile).at(threshold)

    def _curve(self, anomaly_scores: Mapping[str, npt.ArrayLike], profile: str | CostProfile) -> _ThresholdCurve:
        cost = PROFILES[profile] if isinstance(profile, str) else profile
        scores = self._concatenate(anomaly_scores)
        order = np.argsort(-scores, kind="stable")
        weight = self._sweep_weights(cost)[order]
        window = self._window[order]

        # A threshold's value is the FP weights of detected rows outside windows plus, per window, the best
        # (earliest) detected reward instead of the FN cost. As the threshold falls, each window's best
        # reward rises in steps; the sum of those steps plus the FP weights is one cumulative sum.
        gain = np.where(window == _OUTSIDE, weight, 0.0)
        inside = np.flatnonzero(window >= 0)
        by_window = inside[np.argsort(window[inside], kind="stable")]  # keeps descending score order per window
        ids = window[by_window]
        # Offsetting each window by a multiple of its id makes one running maximum restart at every window.
        offset = 2.0 * (float(np.abs(weight).max(initial=0.0)) + 1.0) * ids
        running = np.maximum.accumulate(weight[by_window] + offset) - offset
        starts = np.r_[True, ids[1:] != ids[:-1]]
        previous = np.where(starts, -cost.fn_weight, np.r_[0.0, running[:-1]])
        gain[by_window] = running - previous
        base = self.null_score(cost)
        return _ThresholdCurve(self, cost, scores[order], weight, window, base + np.cumsum(gain), base)

    def null_score(self, profile: CostProfile) -> float:
        """Raw score of the null detector: every scorable window missed, nothing else detected."""
        return -profile.fn_weight * self.scorable_windows

    def normalise(self, raw: float, profile: CostProfile) -> float:
        perfect = profile.tp_weight * self.n_windows
        null = self.null_score(profile)
        # A corpus without windows has no range to normalise over.
        return 100.0 * (raw - null) / (perfect - null) if perfect > null else math.nan


@dataclass(frozen=True, slots=True)
class _ThresholdCurve:
    """Raw score after each row of the corpus sorted by descending anomaly score."""

    scorer: NabScorer
    cost: CostProfile
    sorted_scores: FloatArray
    weight: FloatArray
    window: npt.NDArray[np.int64]
    total: FloatArray
    base: float

    def best(self) -> NabScore:
        # Only the last row of a run of equal scores is a threshold.
        ends = np.flatnonzero(np.r_[self.sorted_scores[1:] != self.sorted_scores[:-1], True])
        if ends.size == 0 or self.total[ends].max() <= self.base:
            # NAB's sweep starts above every score (nothing detected), which wins ties.
            return self._result(1.1, -1)
        cut = int(ends[int(np.argmax(self.total[ends]))])
        return self._result(float(self.sorted_scores[cut]), cut)

    def at(self, threshold: float) -> NabScore:
        cut = int(np.searchsorted(-self.sorted_scores, -threshold, side="right")) - 1
        return self._result(threshold, cut)

    def _result(self, threshold: float, cut: int) -> NabScore:
        raw = float(self.total[cut]) if cut >= 0 else self.base
        detected = self.window[: cut + 1]
        weight = self.weight[: cut + 1]
        inside = detected >= 0
        tp = int(np.unique(detected[inside]).size)
        # The earliest detection of a window has its largest reward.
        best = np.full(int(detected.max(initial=-1)) + 1, -np.inf)
        np.maximum.at(best, detected[inside], weight[inside])
        fn = self.scorer.scorable_windows - tp
        return NabScore(
            profile=self.cost.name,
            threshold=threshold,
            raw=raw,
            normalised=self.scorer.normalise(raw, self.cost),
            tp=tp,
            fp=int(np.count_nonzero(detected == _OUTSIDE)),
            fn=fn,
            tp_reward=float(best[np.isfinite(best)].sum()),
            fp_cost=-float(weight[detected == _OUTSIDE].sum()),
            fn_cost=fn * self.cost.fn_weight,
        )


def _twiddle(objective: Callable[[float], float], guess: float = 0.5, tolerance: float = 1e-7) -> float:
    """NAB v1.0's one-parameter hill climb: step up or down, double the step on success, else halve it."""
    seen = {guess: objective(guess)}
    x, delta, best = guess, 0.1, seen[guess]
    while delta > tolerance:
        x += delta
        if x not in seen:
            seen[x] = objective(x)
        if seen[x] > best:
            best, delta = seen[x], delta * 2
            continue
        x -= 2 * delta
        if x not in seen:
            seen[x] = objective(x)
        if seen[x] > best:
            best, delta = seen[x], delta * 2
        else:
            x += delta
            delta *= 0.5
    return x
