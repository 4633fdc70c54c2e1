"""Behaviour of each tier and of the cascade on series whose anomalies are known by construction."""

from __future__ import annotations

import numpy as np
import pytest
from aiops_detection import (
    Cascade,
    RobustBandDetector,
    SeasonalForecastDetector,
    Severity,
    WindowModelDetector,
    candidate_periods,
    detect_periods,
)

pytestmark = pytest.mark.unit

DAY = 24  # hourly samples


def daily(n: int, rng: np.random.Generator, noise: float = 0.3) -> np.ndarray:
    t = np.arange(n)
    return 50.0 + 10.0 * np.sin(2 * np.pi * t / DAY) + rng.normal(0.0, noise, n)


def small_tier3() -> WindowModelDetector:
    return WindowModelDetector(
        window=8, periods=(DAY,), history=400, refit_every=200, epochs=60, min_history=200, device="cpu"
    )


def test_seasonality_detection_finds_daily_and_ignores_noise(rng: np.random.Generator) -> None:
    assert candidate_periods(300.0) == (288, 2016)
    assert detect_periods(daily(24 * 14, rng), candidate_periods(3600.0)) == (DAY,)
    assert detect_periods(rng.normal(size=24 * 14), candidate_periods(3600.0)) == ()
    # A trend or a level shift is not seasonality.
    assert detect_periods(np.r_[np.zeros(150), np.ones(186)] + np.arange(336) * 0.01, (DAY,)) == ()


def test_weekly_seasonality_is_detected(rng: np.random.Generator) -> None:
    t = np.arange(24 * 7 * 5)
    weekdays = np.where((t // DAY) % 7 < 5, 10.0, 0.0)
    assert 168 in detect_periods(weekdays + rng.normal(0, 0.5, t.size), candidate_periods(3600.0))


@pytest.mark.parametrize("tier", ["basic", "agile"])
def test_level_shift_is_detected(rng: np.random.Generator, tier: str) -> None:
    values = daily(600, rng)
    values[500:] += 15.0
    detector = RobustBandDetector() if tier == "basic" else SeasonalForecastDetector(periods=(DAY,))
    scores = detector.score_many(values)[0]
    assert scores[500:503].max() > 0.9
    assert scores[300:495].max() < scores[500:503].max()


def test_level_shift_is_adopted_fast_by_tier2(rng: np.random.Generator) -> None:
    values = daily(700, rng)
    values[500:] += 15.0
    scores = SeasonalForecastDetector(periods=(DAY,)).score_many(values)[0]
    # A few points after the jump the forecast sits on the new level: no alert storm.
    assert scores[520:700].max() < 0.5


def test_seasonal_pattern_is_not_flagged(rng: np.random.Generator) -> None:
    values = daily(24 * 40, rng)
    for detector in (SeasonalForecastDetector(periods=(DAY,)), small_tier3()):
        scores = detector.score_many(values)[0]
        # The daily swing is 60 times the noise; only the noise's rare new extremes may reach 0.5.
        assert np.quantile(scores[400:], 0.99) < 0.5, type(detector).__name__
        assert scores[400:].max() < 0.75, type(detector).__name__


def test_flat_stretch_inside_the_normal_range_is_caught_by_the_deeper_tiers(rng: np.random.Generator) -> None:
    values = daily(24 * 40, rng)
    values[800:830] = 50.0  # the signal stops oscillating but stays mid-range: no new extreme
    tier2 = SeasonalForecastDetector(periods=(DAY,)).score_many(values)[0]
    tier3 = small_tier3().score_many(values)[0]
    assert tier2[800:830].max() > 0.9
    assert tier3[800:830].max() > 0.9
    assert tier3[400:795].max() < tier3[800:830].max()


@pytest.mark.parametrize("make", [RobustBandDetector, lambda: SeasonalForecastDetector(periods=(DAY,)), small_tier3])
def test_cold_start_is_silent_even_on_wild_values(make: object, rng: np.random.Generator) -> None:
    detector = make()  # type: ignore[operator]
    values = rng.standard_cauchy(400) * 100
    scores = detector.score_many(values)[0]
    assert np.all(scores[: detector.min_history] == 0.0)


def test_cascade_gates_deeper_tiers_and_reports_evidence_band_and_severity(rng: np.random.Generator) -> None:
    values = daily(24 * 30, rng)
    values[650] += 40.0
    cascade = Cascade(agile=SeasonalForecastDetector(periods=(DAY,)), robust=small_tier3())
    explained = cascade.explain_many(values)
    for x in values[:650]:
        cascade.learn_one(float(x))
    verdict = cascade.verdict_one(float(values[650]))
    assert verdict.score == pytest.approx(explained.score[0, 650])
    assert verdict.severity is Severity.CRITICAL
    assert set(verdict.evidence) == {"basic", "agile", "robust"}
    assert not verdict.lower <= values[650] <= verdict.upper
    assert verdict.lower < values[650] - 40.0 < verdict.upper  # the band holds what the point should have been
    quiet = cascade.verdict_one(float(values[649]))
    assert quiet.severity is Severity.NONE
    # Tier 2 runs exactly where tier 1 flags, tier 3 exactly where tier 2 then agrees.
    flagged = explained.basic >= cascade.flag
    np.testing.assert_array_equal(~np.isnan(explained.agile), flagged)
    np.testing.assert_array_equal(~np.isnan(explained.robust), flagged & (explained.agile_all >= cascade.confirm))
    assert np.isnan(explained.robust[0, 300:640]).mean() > 0.5


def test_tier3_runs_on_the_cpu_deterministically(rng: np.random.Generator) -> None:
    values = daily(500, rng)
    first, second = small_tier3().score_many(values), small_tier3().score_many(values)
    np.testing.assert_array_equal(first, second)
    other_seed = WindowModelDetector(**(small_tier3().get_params() | {"seed": 1})).score_many(values)
    assert not np.array_equal(first, other_seed)
