"""Series that report less often than the window: seasons counted in their reports, refractory in their reports.

A CloudWatch-style metric at 5-minute resolution has data in one 1-minute window in
five, and the stream layer marks the four windows between as ``absent``. Its day is
288 reports, not 1,440 windows, and "100 windows of refractory" means 100 of its
reports, not 20.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pytest
from aiops_common.schemas import FeatureBatch, SeriesMeta
from aiops_detection.agents.anomaly_detector import AnomalyPartition, Detection
from aiops_detection.detectors.seasonality import candidate_periods, reporting_step_ms
from aiops_detection.detectors.series_detectors import STEP_WINDOWS, build_cascade
from aiops_detection.service_settings import DetectionServiceSettings

from .conftest import T0, WINDOW_MS, new_partition, periodic_history, windows

pytestmark = pytest.mark.unit

Settings = Callable[..., DetectionServiceSettings]
EVERY = 5  # windows per report
STEP_MS = EVERY * WINDOW_MS
SLOW = SeriesMeta("disk_write_bytes", {"instance": "i-1", "service": "storage"})


@pytest.mark.parametrize(
    ("ends", "length", "step"),
    [
        ([60_000 * i for i in range(1, 20)], 60_000, 60_000),  # every window
        ([300_000 * i for i in range(1, 20)], 60_000, 300_000),  # one window in five
        ([300_000, 600_000, 1_200_000, 1_500_000, 1_560_000, 1_800_000, 2_100_000], 60_000, 300_000),  # miss, double
        ([290_000, 590_000, 880_000, 1_190_000, 1_490_000], 10_000, 300_000),  # 10 s windows: a jittery exporter
        ([600_000], 60_000, 60_000),  # one report says nothing yet
    ],
)
def test_the_reporting_step_is_the_median_gap_in_whole_windows(ends: list[int], length: int, step: int) -> None:
    assert reporting_step_ms(ends, length) == step


def test_a_window_length_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        reporting_step_ms([1, 2], 0)


def slow_batches(values: Sequence[float], first_report: int = 0, per_batch: int = 10) -> list[FeatureBatch]:
    """Report ``i`` lands in window ``(first_report + i) * EVERY``; the windows between are ``absent`` rows."""
    batches = []
    for b in range(0, len(values), per_batch):
        starts, cols = [], {"value": [], "count": [], "absent": []}
        for i in range(b, min(len(values), b + per_batch)):
            window = (first_report + i) * EVERY
            for offset in range(EVERY):
                starts.append(T0 + (window + offset) * WINDOW_MS)
                data = offset == 0
                cols["value"].append(values[i] if data else float("nan"))
                cols["count"].append(1.0 if data else 0.0)
                cols["absent"].append(0.0 if data else 1.0)
        batches.append(FeatureBatch.from_rows([SLOW], [0] * len(starts), starts, [WINDOW_MS] * len(starts), cols))
    return batches


def feed_slow(part: AnomalyPartition, values: Sequence[float], first_report: int = 0) -> list[Detection]:
    return [d for batch in slow_batches(values, first_report) for d in part.process(batch)]


def test_a_slow_series_gets_seasons_in_its_own_reports_as_if_built_for_them(service_settings: Settings) -> None:
    settings = service_settings()
    values = periodic_history(300, seed=4)
    part = new_partition(settings)
    feed_slow(part, values[: STEP_WINDOWS - 1])
    state = part.states[f"{SLOW.key}@{WINDOW_MS}"]
    assert state.step_ms is None  # not settled yet: the day is still counted in windows
    assert state.cascade is not None and state.cascade.agile.periods == candidate_periods(60.0)

    feed_slow(part, values[STEP_WINDOWS - 1 :], first_report=STEP_WINDOWS - 1)
    assert state.step_ms == STEP_MS and state.seen == values.size and state.duplicates == 0
    assert state.cascade.agile.periods == state.cascade.robust.periods == candidate_periods(300.0) == (288, 2016)
    # Tiers 2 and 3 are where a cascade built for 5-minute reports from the start would be.
    reference = build_cascade(settings, WINDOW_MS, STEP_MS)
    for v in values:
        reference.learn_one(float(v))
    for probe in (values[0], values[0] + 3.0, values[0] - 5.0):
        assert state.cascade.agile.score_one(probe) == reference.agile.score_one(probe)
        assert state.cascade.robust.score_one(probe) == reference.robust.score_one(probe)
    assert state.cascade.agile.expected_band() == reference.agile.expected_band()


def test_a_series_reporting_every_window_keeps_its_daily_period_in_windows(service_settings: Settings) -> None:
    part = new_partition(service_settings())
    values = periodic_history(40)
    batch = FeatureBatch.from_rows(
        [SLOW],
        [0] * values.size,
        [T0 + i * WINDOW_MS for i in range(values.size)],
        [WINDOW_MS] * values.size,
        {"value": values.tolist(), "count": [6.0] * values.size},
    )
    part.process(batch)
    state = part.states[f"{SLOW.key}@{WINDOW_MS}"]
    assert state.step_ms == WINDOW_MS
    assert state.cascade is not None and state.cascade.agile.periods == (1440, 10080)


def test_refractory_counts_the_reports_not_the_absent_windows_between(service_settings: Settings) -> None:
    # A known limit alerts from the first report (no cold start) and keeps the scores simple.
    settings = service_settings(detect_static_thresholds={SLOW.name: [None, 100.0]}, detect_refractory_points=20)
    values = np.full(80, 50.0)
    values[[30, 40, 70]] = 150.0  # report 40: 10 reports (50 windows) after 30; report 70: 30 reports after 40
    found = feed_slow(new_partition(settings), values.tolist())
    assert [d.finding.detector for d in found] == ["static", "static"]
    assert windows(found) == [30 * EVERY, 70 * EVERY]
