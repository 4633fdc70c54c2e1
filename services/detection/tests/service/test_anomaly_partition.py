"""The anomaly detector's per-partition state: which windows alert, cold start, re-delivery, checkpoints, routing."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from aiops_common.schemas import FeatureBatch, SeriesMeta
from aiops_detection.detectors.cascade import Severity
from aiops_detection.service_settings import DetectionServiceSettings

from .conftest import (
    COLD_SPIKE,
    SHIFT,
    SPIKE,
    T0,
    WINDOW_MS,
    feed,
    incident_history,
    new_partition,
    periodic_history,
    window_batch,
    windows,
)

pytestmark = pytest.mark.unit

CPU = SeriesMeta("cpu", {"host": "a", "service": "api"})
Settings = Callable[..., DetectionServiceSettings]


def test_exactly_the_incident_windows_alert_with_score_band_and_evidence(service_settings: Settings) -> None:
    part = new_partition(service_settings())
    found = feed(part, CPU, incident_history(320))
    assert windows(found) == [SHIFT, SPIKE]
    for d in found:
        f = d.finding
        assert f.detector == "cascade"
        assert f.score >= 0.9 and f.severity == Severity.CRITICAL
        assert f.lower is not None and f.upper is not None and f.value is not None
        assert f.value > f.upper > f.lower  # both jumped above what the cascade expected
        assert set(f.evidence) == {"basic", "agile", "robust"}
        assert d.model_version is None
    state = part.states[f"{CPU.key}@{WINDOW_MS}"]
    assert state.warm and state.seen == 320


def test_nothing_alerts_during_the_cold_start(service_settings: Settings) -> None:
    values = periodic_history(120)
    values[COLD_SPIKE] += 50.0
    values[99] += 50.0  # the last cold window
    part = new_partition(service_settings())
    assert windows(feed(part, CPU, values)) == []
    assert part.states[f"{CPU.key}@{WINDOW_MS}"].seen == 120


def test_a_restored_checkpoint_continues_as_if_never_stopped_and_skips_redelivery(service_settings: Settings) -> None:
    settings = service_settings()
    values = incident_history(320)
    first = new_partition(settings)
    before = windows(feed(first, CPU, values[:SPIKE]))
    restored = new_partition(settings)
    restored.restore(first.changed())
    assert first.changed() == {}  # nothing changed since
    assert restored.series_ids() == [f"{CPU.key}@{WINDOW_MS}"]

    spike = window_batch([CPU], SPIKE, [{"value": values[SPIKE : SPIKE + 5], "count": [6.0] * 5}], batch_id="b1")
    after = windows(restored.process(spike))
    state = restored.states[f"{CPU.key}@{WINDOW_MS}"]
    seen, last = state.seen, state.last_start_ms
    # Delivered again (a producer's retry, a re-read after a restart): nothing learned, nothing found.
    assert restored.process(FeatureBatch.decode(spike.encode())) == []
    assert (state.seen, state.last_start_ms, state.duplicates) == (seen, last, 5)
    after += windows(feed(restored, CPU, values[SPIKE + 5 :], first=SPIKE + 5))
    # The same windows as one uninterrupted run (test_exactly_the_incident_windows_alert...).
    assert before + after == [SHIFT, SPIKE]


def test_other_window_lengths_are_ignored(service_settings: Settings) -> None:
    part = new_partition(service_settings())
    batch = FeatureBatch.from_rows([CPU], [0, 0], [T0, T0], [10_000, 300_000], {"value": [1.0, 2.0]})
    assert part.process(batch) == [] and part.states == {}


def _rows(series: SeriesMeta, columns: dict[str, np.ndarray]) -> FeatureBatch:
    return window_batch([series], 0, [{k: v.tolist() for k, v in columns.items()}])


def test_error_rate_needs_requests_and_uses_the_error_rate_detector(service_settings: Settings) -> None:
    series = SeriesMeta("red.error_rate", {"service": "api", "operation": "GET /"})
    n = 160
    requests = np.full(n, 200.0)
    errors = np.full(n, 2.0)
    requests[130], errors[130] = 4.0, 3.0  # 75% of four requests: too few to judge
    errors[150] = 60.0  # 30% of two hundred
    part = new_partition(service_settings())
    found = part.process(_rows(series, {"value": errors / requests, "count": requests, "sum": errors}))
    assert windows(found) == [150]
    f = found[0].finding
    assert f.detector == "error_rate" and f.value == pytest.approx(0.3)
    assert f.lower == 0.0 and f.upper == pytest.approx(0.01, rel=0.05)
    assert "basic" not in f.evidence and f.evidence["baseline_error_rate"] == pytest.approx(0.01, rel=0.05)


def test_latency_degradation_against_its_baseline(service_settings: Settings) -> None:
    series = SeriesMeta("red.latency_s", {"service": "api", "operation": "GET /"})
    n = 420
    p95 = np.full(n, 0.20) + np.tile([0.0, 0.01, -0.01], n // 3 + 1)[:n]
    p95[400:] = 0.5  # degraded for good
    mean = np.full(n, 0.1)
    part = new_partition(service_settings())
    found = part.process(_rows(series, {"value": mean, "p95": p95, "count": np.full(n, 50.0)}))
    # The median of the 6 latest windows moves on the third slow one, and gets worse once more on the fourth.
    assert windows(found) == [402, 403]
    f = found[0].finding
    assert f.detector == "latency" and f.value == 0.5 and f.evidence["latency_ratio"] > 1.5


def test_an_absent_series_is_silent_after_its_typical_gap(service_settings: Settings) -> None:
    n = 130
    values = periodic_history(n)
    absent = np.zeros(n)
    values[110:] = math.nan
    absent[110:] = 1.0
    part = new_partition(service_settings())
    found = part.process(_rows(CPU, {"value": values, "absent": absent}))
    # Silent from window 110; a 60 s typical gap, tolerance 3 and saturation 10 reach 0.5 at a gap of 6.5
    # windows (window 116), then each longer gap scores higher once more.
    assert [d.finding.detector for d in found] == ["silence"] * len(found)
    assert windows(found) == [116, 117, 118, 119]
    assert [d.finding.score for d in found] == sorted(d.finding.score for d in found)


def test_static_limits_alert_without_history(service_settings: Settings) -> None:
    disk = SeriesMeta("disk_used_percent", {"host": "a"})
    part = new_partition(service_settings(detect_static_thresholds={"disk_used_percent": (None, 95.0)}))
    found = part.process(_rows(disk, {"value": np.array([50.0, 60.0, 97.0, 99.0])}))
    assert windows(found) == [2, 3]
    assert found[0].finding.detector == "static" and found[0].finding.upper == 95.0


def test_state_written_by_other_detector_code_is_not_loaded(service_settings: Settings) -> None:
    from aiops_detection.agents.partition_state import dump_state, load_state
    from aiops_detection.detectors.series_detectors import STATE_FINGERPRINT

    part = new_partition(service_settings())
    feed(part, CPU, periodic_history(20))
    ((ident, blob),) = part.changed().items()
    state = load_state(blob, STATE_FINGERPRINT)
    assert state is not None and state.seen == 20
    assert load_state(blob, "other code") is None and load_state(b"garbage", STATE_FINGERPRINT) is None
    restored = new_partition(service_settings())
    restored.restore({ident: dump_state(state, "other code")})
    assert restored.states == {}  # the series starts again, rather than fail later on a foreign object


def test_a_steadily_growing_series_does_not_alert_on_every_new_high(service_settings: Settings) -> None:
    disk = SeriesMeta("disk_used_bytes", {"host": "a"})
    rng = np.random.default_rng(7)
    growing = 1e9 + 2e6 * np.arange(600) + rng.normal(0.0, 5e5, 600)  # a new high on most windows
    quiet = feed(new_partition(service_settings()), disk, growing)
    # At an alert score of 0.5 a value only just past the recent extremes alerts: most new highs would.
    every_high = feed(new_partition(service_settings(detect_alert_score=0.5)), disk, growing)
    assert len(quiet) <= 5  # the noise's own records, as a flat noisy series has them
    assert len(every_high) >= 3 * len(quiet)
    # A real jump on the same series still alerts.
    jumped = np.r_[growing, growing[-1] + 1e8]
    assert 600 in windows(feed(new_partition(service_settings()), disk, jumped))
