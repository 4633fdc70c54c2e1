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
99.33
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

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
    def from_arrays(
        cls, name: str, values: npt.ArrayLike, windows: Iterable[tuple[int, int]] = ()
    ) -> LabelledSeries:
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


@dataclass(frozen=True, slots=True)
class _SweepTable:
    weight: FloatArray  # profile-weighted sweep score of every scorable row
    window: npt.NDArray[np.int64]  # global window id, or _OUTSIDE


class NabScorer:
    """Scores per-row anomaly scores of every file of a corpus, NAB-style, for any profile."""

    def __init__(self, corpus: Sequence[LabelledSeries]) -> None:
        self.corpus = list(corpus)
        self._names = [series.name for series in self.corpus]
        self.n_windows = sum(len(series.windows) for series in self.corpus)
        position, window, tp_row = self._positions()
        keep = window != _PROBATION
        self._keep = keep
        self._position = position[keep]
        self._window = window[keep]
        self._tp_row = tp_row[keep]
        self._scorable_windows = np.unique(self._window[self._window >= 0]).size
        self._tables: dict[str, _SweepTable] = {}

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

    def _table(self, profile: CostProfile) -> _SweepTable:
        table = self._tables.get(profile.name)
        if table is None:
            reward = scaled_sigmoid(self._position)
            # NAB rescales true positives so that a detection on a window's first row earns exactly tp_weight.
            weight = np.where(self._tp_row, reward * profile.tp_weight / _MAX_TP, reward * profile.fp_weight)
            table = _SweepTable(weight, self._window)
            self._tables[profile.name] = table
        return table

    def _concatenate(self, anomaly_scores: Mapping[str, npt.ArrayLike]) -> FloatArray:
        parts = []
        for series in self.corpus:
            scores = np.asarray(anomaly_scores[series.name], dtype=np.float64)
            if scores.shape != (len(series),):
                raise ValueError(f"{series.name}: {scores.shape[0]} scores for {len(series)} rows")
            parts.append(scores)
        return np.concatenate(parts)[self._keep]

    def score(self, anomaly_scores: Mapping[str, npt.ArrayLike], profile: str | CostProfile) -> NabScore:
        """Sweep every distinct score as threshold (detection: ``score >= threshold``) and keep the best."""
        return self._sweep(anomaly_scores, profile, None)

    def score_at(
        self, anomaly_scores: Mapping[str, npt.ArrayLike], profile: str | CostProfile, threshold: float
    ) -> NabScore:
        """The score at one given threshold, without optimising it."""
        return self._sweep(anomaly_scores, profile, threshold)

    def _sweep(
        self, anomaly_scores: Mapping[str, npt.ArrayLike], profile: str | CostProfile, threshold: float | None
    ) -> NabScore:
        cost = PROFILES[profile] if isinstance(profile, str) else profile
        table = self._table(cost)
        scores = self._concatenate(anomaly_scores)
        order = np.argsort(-scores, kind="stable")
        sorted_scores = scores[order]
        weight = table.weight[order]
        window = table.window[order]

        # A threshold's value is the FP weights of detected rows outside windows plus, per window, the best
        # (earliest) detected reward instead of the FN cost. As the threshold falls, each window's best
        # reward rises in steps; the sum of those steps plus the FP weights is one cumulative sum.
        gain = np.where(window == _OUTSIDE, weight, 0.0)
        inside = np.flatnonzero(window >= 0)
        by_window = inside[np.argsort(window[inside], kind="stable")]  # keeps descending score order per window
        ids = window[by_window]
        # Offsetting each window by its id makes one running maximum restart at every window.
        running = np.maximum.accumulate(weight[by_window] + 4.0 * ids) - 4.0 * ids
        starts = np.r_[True, ids[1:] != ids[:-1]]
        previous = np.where(starts, -cost.fn_weight, np.r_[0.0, running[:-1]])
        gain[by_window] = running - previous

        base = -cost.fn_weight * self._scorable_windows
        total = base + np.cumsum(gain)
        if threshold is None:
            # Only the last row of a run of equal scores is a threshold NAB evaluates.
            ends = np.flatnonzero(np.r_[sorted_scores[1:] != sorted_scores[:-1], True])
            best = int(np.argmax(total[ends])) if ends.size else 0
            # NAB's sweep starts above every score (nothing detected), which wins ties and empty corpora.
            cut = int(ends[best]) if ends.size and total[ends[best]] > base else -1
            chosen = float(sorted_scores[cut]) if cut >= 0 else 1.1
        else:
            cut = int(np.searchsorted(-sorted_scores, -threshold, side="right")) - 1
            chosen = threshold
        raw = float(total[cut]) if cut >= 0 else base
        detected = window[: cut + 1]
        tp = np.unique(detected[detected >= 0]).size
        return NabScore(
            profile=cost.name,
            threshold=chosen,
            raw=raw,
            normalised=self.normalise(raw, cost),
            tp=int(tp),
            fp=int(np.count_nonzero(detected == _OUTSIDE)),
            fn=int(self._scorable_windows - tp),
        )

    def null_score(self, profile: CostProfile) -> float:
        """Raw score of the null detector: every scorable window missed, nothing else detected."""
        return -profile.fn_weight * self._scorable_windows

    def normalise(self, raw: float, profile: CostProfile) -> float:
        perfect = profile.tp_weight * self.n_windows
        null = self.null_score(profile)
        # A corpus without windows has no range to normalise over.
        return 100.0 * (raw - null) / (perfect - null) if perfect > null else math.nan
