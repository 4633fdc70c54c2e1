"""Predictive alerts: a trend that will cross a configured limit within the horizon."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import pytest
from aiops_common.schemas import CrossingDirection, FeatureBatch, SeriesMeta
from aiops_detection.agents.crossing_predictor import CrossingPartition
from aiops_detection.service_settings import DetectionServiceSettings

from .conftest import T0, WINDOW_MS, window_batch

pytestmark = pytest.mark.unit

DISK = SeriesMeta("disk_used_percent", {"host": "a", "mount": "/"})
FREE = SeriesMeta("memory_free_bytes", {"host": "a"})
CPU = SeriesMeta("cpu", {"host": "a"})
Settings = Callable[..., DetectionServiceSettings]


def partition(service_settings: Settings, **overrides: object) -> CrossingPartition:
    settings = service_settings(
        detect_static_thresholds={"disk_used_percent": (None, 95.0), "memory_free_bytes": (1e9, None)},
        detect_forecast_horizon_s=6 * 3600.0,
        **overrides,
    )
    return CrossingPartition(0, settings)


def test_a_filling_disk_is_predicted_to_cross_once_per_repeat_interval(service_settings: Settings) -> None:
    part = partition(service_settings, detect_prediction_repeat_s=3600.0)
    n = 160
    rng = np.random.default_rng(3)
    disk = 50.0 + 0.1 * np.arange(n) + rng.normal(0, 0.05, n)  # +6 %/hour: 95 % is 7.5 hours after window 0
    cpu = 40.0 + rng.normal(0, 1, n)
    found = part.process(window_batch([DISK, CPU], 0, [{"value": disk}, {"value": cpu}]))
    assert {p.series_name for p in found} == {"disk_used_percent"}  # no limits, no forecast
    first = found[0]
    made = (first.made_at.timestamp() * 1000 - T0) / WINDOW_MS
    # Within the 6-hour horizon once the disk is at 59 %, 90 windows in.
    assert 88 <= made <= 93
    assert first.direction == CrossingDirection.ABOVE and first.threshold == 95.0
    eta_h = (first.predicted_at - first.made_at).total_seconds() / 3600
    assert 5.0 < eta_h <= 6.0
    assert first.earliest_at <= first.predicted_at and first.slope_per_s == pytest.approx(0.1 / 60, rel=0.05)
    assert first.confidence == 0.9 and first.horizon_s == 6 * 3600.0
    # Still crossing an hour (60 windows) later: published again, not before.
    assert [round((p.made_at - first.made_at).total_seconds() / 60) for p in found] == [0, 60]
    assert part.process(FeatureBatch.decode(window_batch([DISK], 0, [{"value": disk}]).encode())) == []


def test_a_falling_series_crosses_its_lower_limit_and_a_recovery_is_no_alert(service_settings: Settings) -> None:
    part = partition(service_settings)
    n = 60
    free = 3e9 - 2e7 * np.arange(n)  # 1.2 GB an hour: 1 GB crossed about 100 windows in
    found = part.process(window_batch([FREE], 0, [{"value": free}]))
    assert found and found[0].direction == CrossingDirection.BELOW and found[0].threshold == 1e9
    recovering = partition(service_settings)
    disk = 99.0 - 0.1 * np.arange(n)  # above the limit and falling back: nothing to predict
    assert recovering.process(window_batch([DISK], 0, [{"value": disk}])) == []


def test_state_survives_a_checkpoint(service_settings: Settings) -> None:
    disk = 80.0 + 0.1 * np.arange(60)  # 95 % within 2.5 hours from the start
    first = partition(service_settings)
    assert first.process(window_batch([DISK], 0, [{"value": disk[:10]}])) == []  # too few windows for a trend
    restored = partition(service_settings)
    restored.restore(first.changed())
    found = restored.process(window_batch([DISK], 10, [{"value": disk[10:]}]))
    # The forecaster kept its ten windows: the twelfth completes the trend.
    assert found and found[0].made_at == datetime.fromtimestamp((T0 + 12 * WINDOW_MS) / 1000, UTC)
    assert restored.series_ids() == [f"{DISK.key}@{WINDOW_MS}"]
