"""Cascades trained in batch on TSDB history, and their artifact format in the model registry.

``aiops train`` reads each series' ``<name>:value_<window>s`` aggregate (what the
stream service's TSDB writer records at every window end), runs the same cascade a
worker would build through that history, and stores one artifact per window length,
named ``cascade-<window>s``: every trained series by key, with where its history
ends. Windows that operators labelled true positives are held at the last normal
value, so a real incident is not learned as normal.

Artifacts are pickles (zlib-compressed): only load them from a registry you trust.
"""

from __future__ import annotations

import pickle
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from aiops_common.schemas import AnomalyRecord, series_key
from aiops_common.schemas.features import window_series_name
from aiops_common.tsdb import Series, TimeSeriesStore

from aiops_detection.detectors.seasonality import reporting_step_ms
from aiops_detection.detectors.series_detectors import ERROR_RATE, TrainedSeries, build_cascade
from aiops_detection.settings import DetectionSettings

__all__ = [
    "MODEL_FORMAT",
    "TrainingResult",
    "decode_models",
    "encode_models",
    "load_history",
    "model_name",
    "train_all",
    "train_series",
]

MODEL_FORMAT = 1


def model_name(length_ms: int) -> str:
    return f"cascade-{length_ms // 1000}s"


def encode_models(series: Mapping[str, TrainedSeries]) -> bytes:
    return zlib.compress(pickle.dumps({"format": MODEL_FORMAT, "series": dict(series)}, protocol=5), 1)


def decode_models(data: bytes) -> dict[str, TrainedSeries]:
    body = pickle.loads(zlib.decompress(data))
    if not isinstance(body, dict) or body.get("format") != MODEL_FORMAT:
        raise ValueError(f"not a cascade artifact of format {MODEL_FORMAT}")
    series: dict[str, TrainedSeries] = body["series"]
    return series


@dataclass(slots=True)
class TrainingResult:
    series: dict[str, TrainedSeries] = field(default_factory=dict)
    points: int = 0
    imputed: int = 0
    seconds: float = 0.0

    def metrics(self) -> dict[str, float]:
        seasonal = sum(1 for t in self.series.values() if t.cascade.agile.period is not None)
        return {
            "series": float(len(self.series)),
            "points": float(self.points),
            "imputed_points": float(self.imputed),
            "seasonal_series": float(seasonal),
            "seconds": round(self.seconds, 3),
        }


async def load_history(
    tsdb: TimeSeriesStore,
    names: Sequence[str],
    labels: Mapping[str, str],
    start_ms: int,
    end_ms: int,
    length_ms: int,
) -> list[Series]:
    """The aggregates of the named feature series (all of this window length when none is named)."""
    if names:
        wanted = [window_series_name(n, "value", length_ms) for n in names]
    else:
        suffix = window_series_name("", "value", length_ms)
        wanted = [n for n in await tsdb.label_values("__name__") if n.endswith(suffix) and n != suffix]
    found: list[Series] = []
    for name in wanted:
        found.extend(await tsdb.query_range({"__name__": name, **labels}, start_ms, end_ms))
    return found


def _held_windows(ends: npt.NDArray[np.int64], windows: Iterable[tuple[int, int]]) -> npt.NDArray[np.bool_]:
    """Points whose window end falls in one of ``(start, end]``: the labelled incidents."""
    held = np.zeros(ends.shape, dtype=bool)
    for start, end in windows:
        held |= (ends > start) & (ends <= end)
    return held


def train_series(
    tsdb_series: Series,
    length_ms: int,
    settings: DetectionSettings,
    incidents: Iterable[AnomalyRecord] = (),
    progress: Callable[[int], object] | None = None,
) -> tuple[str, TrainedSeries | None, int]:
    """Train one series' cascade on its history: ``(series key, trained or None, points held)``."""
    suffix = window_series_name("", "value", length_ms)
    name = tsdb_series.name.removesuffix(suffix)
    key = series_key(name, tsdb_series.labels)
    values = np.asarray(tsdb_series.values, dtype=np.float64)
    ends = np.asarray(tsdb_series.ts_ms, dtype=np.int64)
    keep = np.isfinite(values)
    values, ends = values[keep], ends[keep]
    if name == ERROR_RATE or values.size == 0:
        return key, None, 0
    windows = [
        (int(a.window_start.timestamp() * 1000), int(a.window_end.timestamp() * 1000))
        for a in incidents
        if a.series_key == key
    ]
    held = _held_windows(ends, windows)
    for i in np.flatnonzero(held).tolist():
        if i > 0:
            values[i] = values[i - 1]
    step_ms = reporting_step_ms(ends, length_ms)
    cascade = build_cascade(settings, length_ms, step_ms)
    step = 256
    for start in range(0, values.size, step):
        for v in values[start : start + step].tolist():
            cascade.learn_one(v)
        if progress is not None:
            progress(min(step, values.size - start))
    return key, TrainedSeries(cascade, int(ends[-1]), int(values.size), step_ms), int(held.sum())


def train_all(
    history: Sequence[Series],
    length_ms: int,
    settings: DetectionSettings,
    incidents: Sequence[AnomalyRecord] = (),
    progress: Callable[[int], object] | None = None,
) -> TrainingResult:
    """Train every series of ``history`` one after the other."""
    started = time.perf_counter()
    result = TrainingResult()
    for series in history:
        key, trained, imputed = train_series(series, length_ms, settings, incidents, progress)
        if trained is not None:
            result.series[key] = trained
            result.points += trained.points
            result.imputed += imputed
    result.seconds = time.perf_counter() - started
    return result
