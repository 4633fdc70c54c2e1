"""Trained cascades: training on history, the artifact format, warm starts and swaps in a running partition."""

from __future__ import annotations

import pickle
import zlib
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import pytest
from aiops_common.schemas import AnomalyRecord, AnomalySeverity, SeriesMeta, anomaly_id
from aiops_common.tsdb import Series
from aiops_detection.agents.model_updates import LoadedModels
from aiops_detection.detectors.trained_models import decode_models, encode_models, model_name, train_all, train_series
from aiops_detection.service_settings import DetectionServiceSettings

from .conftest import SHIFT, SPIKE, T0, WINDOW_MS, feed, incident_history, new_partition, periodic_history, windows

pytestmark = pytest.mark.unit

CPU = SeriesMeta("cpu", {"host": "a"})
KEY = f"{CPU.key}@{WINDOW_MS}"
Settings = Callable[..., DetectionServiceSettings]


def history(values: np.ndarray, first: int = 0) -> Series:
    """What the stream's TSDB writer records: ``<name>:value_60s`` at every window end."""
    ends = T0 + (np.arange(values.size) + first + 1) * WINDOW_MS
    return Series("cpu:value_60s", dict(CPU.labels), ends.astype(np.int64), values.astype(np.float64))


def test_training_runs_the_worker_cascade_and_round_trips(service_settings: Settings) -> None:
    settings = service_settings()
    result = train_all([history(periodic_history(150))], WINDOW_MS, settings)
    trained = result.series[CPU.key]
    assert trained.points == 150 and trained.end_ms == T0 + 150 * WINDOW_MS
    assert result.metrics()["series"] == 1.0 and result.metrics()["points"] == 150.0
    again = decode_models(encode_models(result.series))[CPU.key]
    assert again.end_ms == trained.end_ms and again.cascade.agile.period == trained.cascade.agile.period
    assert model_name(WINDOW_MS) == "cascade-60s"
    with pytest.raises(ValueError, match="format"):
        decode_models(zlib.compress(pickle.dumps({"format": 99, "series": {}})))


def test_a_series_reporting_every_fifth_window_trains_with_seasons_in_its_reports(service_settings: Settings) -> None:
    slow = Series("cpu:value_60s", dict(CPU.labels), T0 + np.arange(1, 151) * 5 * WINDOW_MS, periodic_history(150))
    trained = train_all([slow], WINDOW_MS, service_settings()).series[CPU.key]
    assert trained.step_ms == 5 * WINDOW_MS
    assert trained.cascade.agile.periods == trained.cascade.robust.periods == (288, 2016)
    assert (
        train_all([history(periodic_history(150))], WINDOW_MS, service_settings()).series[CPU.key].step_ms == WINDOW_MS
    )


def test_labelled_incident_windows_are_held_at_the_last_normal_value(service_settings: Settings) -> None:
    values = periodic_history(150)
    values[120] += 30.0
    start = datetime.fromtimestamp((T0 + 120 * WINDOW_MS) / 1000, UTC)
    incident = AnomalyRecord(
        id=anomaly_id(CPU.key, T0 + 120 * WINDOW_MS, WINDOW_MS),
        series_name="cpu",
        labels=dict(CPU.labels),
        series_key=CPU.key,
        window_start=start,
        window_end=datetime.fromtimestamp((T0 + 121 * WINDOW_MS) / 1000, UTC),
        value=float(values[120]),
        score=1.0,
        severity=AnomalySeverity.CRITICAL,
        detector="cascade",
        detected_at=start,
    )
    _, trained, held = train_series(history(values), WINDOW_MS, service_settings(), [incident])
    assert held == 1 and trained is not None
    # The band learned nothing of the incident: its top is the normal cycle's.
    assert trained.cascade.basic.expected_band()[1] < values[120] - 20


def test_a_new_series_starts_warm_from_a_model_that_ends_where_it_begins(service_settings: Settings) -> None:
    settings = service_settings()
    values = incident_history(320)
    trained = train_all([history(values[:150])], WINDOW_MS, settings).series
    part = new_partition(settings)
    part.models.loaded = {WINDOW_MS: LoadedModels("cascade-60s", 1, trained)}
    # Windows the model has learned already are skipped; the rest alert from the first one, no cold start.
    found = feed(part, CPU, values[140:], first=140)
    assert windows(found) == [SHIFT, SPIKE]
    assert {d.model_version for d in found} == {1}
    cold = new_partition(settings)
    assert windows(feed(cold, CPU, values[150:], first=150)) == [SPIKE]  # warm only from window 250


def test_a_running_series_swaps_to_a_new_version_after_catching_up(service_settings: Settings) -> None:
    settings = service_settings()
    values = incident_history(320)
    part = new_partition(settings)
    assert windows(feed(part, CPU, values[:200])) == []
    # Trained on windows 0..179: the worker brings it through 180..199 from memory, then swaps.
    part.models.loaded = {
        WINDOW_MS: LoadedModels("cascade-60s", 1, train_all([history(values[:180])], WINDOW_MS, settings).series)
    }
    found = feed(part, CPU, values[200:], first=200)
    assert windows(found) == [SHIFT, SPIKE] and {d.model_version for d in found} == {1}
    state = part.states[KEY]
    assert state.model_version == 1 and state.cascade is not part.models.loaded[WINDOW_MS].series[CPU.key].cascade


def test_a_model_from_the_future_waits_and_one_past_a_hole_is_refused(service_settings: Settings) -> None:
    settings = service_settings(detect_model_catchup_points=10)
    values = periodic_history(200)
    part = new_partition(settings)
    feed(part, CPU, values[:100])
    ahead = train_all([history(values[:120])], WINDOW_MS, settings).series
    part.models.loaded = {WINDOW_MS: LoadedModels("cascade-60s", 1, ahead)}
    feed(part, CPU, values[100:110], first=100)
    assert part.states[KEY].model_version is None  # still behind the model's history
    feed(part, CPU, values[110:130], first=110)
    assert part.states[KEY].model_version == 1
    # Ten windows of memory cannot bridge a model that ends 60 windows back.
    behind = train_all([history(values[:70])], WINDOW_MS, settings).series
    part.models.loaded = {WINDOW_MS: LoadedModels("cascade-60s", 2, behind)}
    feed(part, CPU, values[130:140], first=130)
    assert part.states[KEY].model_version == 1
