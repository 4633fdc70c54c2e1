"""Error-rate spikes, latency degradation, silence, static limits, predictive crossings, settings."""

from __future__ import annotations

import numpy as np
import pytest
from aiops_detection import (
    CrossingForecaster,
    DetectionSettings,
    ErrorRateSpike,
    LatencyDegradation,
    RequestCounts,
    SilenceDetector,
    StaticThreshold,
    static_thresholds,
)

pytestmark = pytest.mark.unit


def warmed_error_detector(min_requests: float = 50.0) -> ErrorRateSpike:
    detector = ErrorRateSpike(min_requests=min_requests, min_baseline_requests=1000)
    for _ in range(30):
        detector.learn_one(RequestCounts(errors=2, requests=100))  # a 2% baseline
    return detector


def test_error_rate_spike_needs_the_minimum_request_count() -> None:
    detector = warmed_error_detector(min_requests=50)
    assert detector.score_one(RequestCounts(errors=20, requests=20)) == 0.0  # 100% of 20 requests: too few
    assert detector.score_one(RequestCounts(errors=50, requests=100)) == 1.0
    assert detector.score_one(RequestCounts(errors=3, requests=100)) < 0.2  # within noise of 2%


def test_error_rate_is_silent_before_a_baseline_exists() -> None:
    detector = ErrorRateSpike(min_baseline_requests=1000)
    detector.learn_one(RequestCounts(errors=0, requests=500))
    assert detector.score_one(RequestCounts(errors=400, requests=500)) == 0.0


def test_latency_degradation_against_baseline() -> None:
    detector = LatencyDegradation(baseline_window=100, recent_window=5, tolerance=1.2, saturation=2.0)
    rng = np.random.default_rng(0)
    for x in rng.normal(100.0, 5.0, 104):
        detector.learn_one(float(x))
    assert detector.score_one(300.0) == 0.0  # one slow interval does not move the median
    for _ in range(2):
        detector.learn_one(300.0)
    assert detector.score_one(300.0) == 1.0  # three of five slow: degraded
    assert detector.ratio(300.0) == pytest.approx(3.0, rel=0.1)


def test_latency_cold_start() -> None:
    detector = LatencyDegradation(baseline_window=100, recent_window=5)
    for _ in range(50):
        detector.learn_one(100.0)
    assert detector.score_one(1000.0) == 0.0


def test_silence_is_scored_in_typical_gaps() -> None:
    detector = SilenceDetector(tolerance=3.0, saturation=10.0)
    for t in np.arange(0.0, 300.0, 10.0):
        detector.learn_one(float(t))
    last = 290.0
    assert detector.typical_gap == 10.0
    assert detector.score_one(last + 25.0) == 0.0
    assert detector.score_one(last + 65.0) == pytest.approx(0.5)
    assert detector.score_one(last + 500.0) == 1.0


def test_silence_keeps_the_last_window_of_gaps_in_one_array_allocated_when_created() -> None:
    detector = SilenceDetector(window=50, min_arrivals=10)
    data = detector._gaps._data
    assert data.size == 50  # the whole window at once: a series' silence state does not grow as it lives
    for t in [*np.arange(0.0, 610.0, 10.0), *np.arange(620.0, 1620.0, 20.0)]:  # 60 gaps of 10 s, then 50 of 20
        detector.learn_one(float(t))
    assert detector._gaps._data is data
    assert detector._gaps.tolist() == [20.0] * 50  # the older 10 s gaps left the window
    assert detector.typical_gap == 20.0


def test_new_series_is_never_silent_and_known_interval_skips_learning() -> None:
    detector = SilenceDetector(min_arrivals=10)
    detector.learn_one(0.0)
    assert detector.score_one(10_000.0) == 0.0
    known = SilenceDetector(expected_interval=60.0, min_arrivals=1)
    known.learn_one(0.0)
    assert known.score_one(60.0 * 20) == 1.0


def test_static_thresholds_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIOPS_DETECT_STATIC_THRESHOLDS", '{"disk_used_percent": [null, 95], "temp": [0, 80]}')
    detectors = static_thresholds(DetectionSettings().detect_static_thresholds)
    assert detectors["disk_used_percent"].score_one(90.0) == 0.0
    assert detectors["disk_used_percent"].score_one(99.0) > 0.5
    assert detectors["temp"].score_one(-5.0) > 0.5
    with pytest.raises(ValueError):
        StaticThreshold()


def test_forecaster_predicts_the_crossing_time_and_its_cautious_bound() -> None:
    rng = np.random.default_rng(1)
    forecaster = CrossingForecaster(window=200)
    for minute in range(0, 600, 5):  # 1% per hour plus noise and one bad sample
        value = 40.0 + minute / 60.0 + rng.normal(0, 0.2)
        forecaster.learn_one((minute * 60.0, value if minute != 300 else 0.0))
    crossing = forecaster.predict_crossing(threshold=60.0, horizon_s=24 * 3600.0)
    assert crossing is not None
    assert crossing.eta_s / 3600.0 == pytest.approx(60.0 - 40.0 - 595 / 60.0, abs=0.5)
    assert crossing.earliest_s <= crossing.eta_s
    assert forecaster.predict_crossing(threshold=60.0, horizon_s=3600.0) is None  # not within an hour
    assert forecaster.predict_crossing(threshold=10.0, horizon_s=1e9) is None  # moving away from it


def test_forecaster_cold_start() -> None:
    forecaster = CrossingForecaster(min_samples=12)
    for i in range(5):
        forecaster.learn_one((float(i), float(i)))
    assert forecaster.predict_crossing(threshold=100.0, horizon_s=1e9) is None


def test_settings_defaults() -> None:
    settings = DetectionSettings()
    assert settings.detect_min_history == 200
    assert settings.device is None
