"""Each evidence source and the ranking on their own: robust scores, change points, regression, kinds, bayes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from aiops_common.schemas import CauseKind
from aiops_rca.case import CaseChange, TraceOrigin
from aiops_rca.evidence.change_points import (
    SPREAD_FLOOR_ABS,
    SPREAD_FLOOR_REL,
    anomaly_llr,
    baseline_of,
    change_point,
    score_window,
    sustained,
)
from aiops_rca.evidence.deployments import changes_before
from aiops_rca.evidence.kinds import kind_of
from aiops_rca.evidence.regression import residuals
from aiops_rca.evidence.traces import origin_shares
from aiops_rca.ranking.bayes import best_paths, rank, upstream_hops

pytestmark = pytest.mark.unit


def test_baseline_is_robust_to_outliers_and_handles_flat_series() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(10, 1, 500)
    x[:10] = 1000  # outliers do not move the median or the MAD
    b = baseline_of(x)
    assert b is not None and abs(b.median - 10) < 0.2 and 0.8 < b.spread < 1.2 and not b.constant
    mostly = np.r_[np.full(95, 100.0), [99.0, 98.0, 100.0, 97.0, 100.0]]  # MAD 0: the IQR, then std
    assert baseline_of(mostly) is not None and baseline_of(mostly).spread > 0  # type: ignore[union-attr]
    flat = baseline_of(np.full(50, 100.0))
    assert flat is not None and flat.constant and flat.spread == pytest.approx(0.1)
    assert baseline_of(np.array([1.0, np.nan, 2.0])) is None


def test_a_two_percent_move_against_a_stepped_roll_ups_baseline_does_not_score_huge() -> None:
    # A 300 s roll-up read on the 10 s grid: three windows' values, each repeated on every step, two of them
    # equal and one differing in the seventh digit. The MAD is 0 and the IQR float noise; without a floor
    # a 2 % drop scored a robust z of about -20,000.
    stepped = np.r_[np.full(30, 0.2), np.full(30, 0.2000003), np.full(20, 0.2)]
    b = baseline_of(stepped)
    assert b is not None and not b.constant
    assert b.spread == pytest.approx(0.2 * SPREAD_FLOOR_REL + SPREAD_FLOOR_ABS)
    score = score_window(np.full(6, 0.2 * 0.98), b, 5.0)
    assert score is not None and -5.0 < score.score < -3.0 and score.onset is None
    # The floor is no ceiling: a latency that doubled still counts, far beyond the threshold.
    doubled = score_window(np.full(6, 0.4), b, 5.0)
    assert doubled is not None and doubled.score > 100 and doubled.onset == 0


def test_a_lasting_departure_scores_higher_than_a_blip() -> None:
    b = baseline_of(np.random.default_rng(1).normal(0, 1, 300))
    assert b is not None
    blip = score_window(np.array([0.0, 30.0, 0.0, 0.0]), b, 5.0)
    lasting = score_window(np.array([0.0, 12.0, 12.0, 12.0]), b, 5.0)
    assert blip is not None and lasting is not None
    assert abs(blip.score) < 1 < 10 < abs(lasting.score)
    assert abs(blip.peak) > 25 and lasting.onset == 1
    assert sustained(np.array([np.nan, 9.0, np.nan, 8.0])) == (0.0, None)  # NaN breaks runs


def test_scores_from_a_pre_onset_level_ignore_an_older_shift() -> None:
    b = baseline_of(np.random.default_rng(2).normal(0, 1, 300))
    assert b is not None
    shifted = np.array([20.0, 20.0, 20.0, 20.0, 20.0])  # off since before the window, and never moved in it
    assert abs(score_window(shifted, b, 5.0).score) > 15  # type: ignore[union-attr]
    assert abs(score_window(shifted, b, 5.0, start=2).score) < 1  # type: ignore[union-attr]


def test_change_point_finds_the_shift_and_its_evidence() -> None:
    rng = np.random.default_rng(3)
    x = np.r_[rng.normal(0, 1, 200), rng.normal(4, 1, 50)]
    cp = change_point(x)
    assert cp is not None and abs(cp.index - 200) <= 2 and cp.log_bayes_factor > 20 and cp.shift > 3
    quiet = change_point(rng.normal(0, 1, 250))
    assert quiet is not None and quiet.log_bayes_factor < 5
    assert change_point(np.ones(100)) is None and change_point(np.arange(4.0)) is None


def test_anomaly_llr_is_zero_at_the_threshold_logarithmic_and_clipped() -> None:
    assert anomaly_llr(5.0, 5.0) == 0.0
    assert anomaly_llr(10.0, 5.0) == pytest.approx(2 * math.log(2))
    assert anomaly_llr(1e9, 5.0) == 8.0 and anomaly_llr(1e9, 5.0, cap=15.0) == 15.0
    assert anomaly_llr(1e9, 5.0, constant=True) == 2.0
    assert anomaly_llr(0.0, 5.0) == -4.0 and anomaly_llr(-10.0, 5.0) == anomaly_llr(10.0, 5.0)


def test_regression_explains_a_callers_move_by_its_callee_but_not_its_own() -> None:
    rng = np.random.default_rng(4)
    n, base = 400, np.arange(400) < 350
    callee = rng.normal(1, 0.1, n)
    callee[350:] += 2
    caller = 3 * callee + rng.normal(0, 0.05, n)
    explained = residuals(caller, [callee], base)
    assert explained is not None and np.max(np.abs(explained[352:])) < 0.5
    own = caller.copy()
    own[350:] += 5
    rest = residuals(own, [rng.normal(1, 0.1, n)], base)
    assert rest is not None and np.min(rest[352:]) > 4
    assert residuals(caller, [], base) is None
    assert residuals(caller, [callee], np.arange(n) < 3) is None  # too little baseline to fit


@pytest.mark.parametrize(
    ("metric", "kind"),
    [
        ("red.latency_s:p95_10s", CauseKind.LATENCY),
        ("latency:Average", CauseKind.LATENCY),
        ("red.error_rate:value_10s", CauseKind.ERRORS),
        ("availability:Average", CauseKind.ERRORS),
        ("red.request_rate:value_10s", CauseKind.TRAFFIC),
        ("process.cpu.utilization:value_10s", CauseKind.SATURATION),
        ("k8s.container.restarts:value_10s", CauseKind.CRASH),
        ("value", CauseKind.UNKNOWN),
    ],
)
def test_kind_of_a_metric_name(metric: str, kind: CauseKind) -> None:
    assert kind_of(metric) is kind


def test_changes_linked_only_in_their_window() -> None:
    onset = 10_000_000
    changes = [
        CaseChange(onset - 600_000, "a", "v2"),
        CaseChange(onset - 4_000_000, "a", "v1"),  # too early
        CaseChange(onset + 30_000, "a", "v3"),  # logged just after onset: clock skew
        CaseChange(onset - 60_000, "b", "v9"),  # another service
    ]
    linked = changes_before(changes, "a", onset, 1800)
    assert [c.change.version for c in linked] == ["v3", "v2"]
    assert "10 min before onset" in linked[1].text and "after onset" in linked[0].text


def test_origin_shares_merge_per_service() -> None:
    shares = origin_shares([TraceOrigin("db", 3, "t1", "q"), TraceOrigin("db", 1), TraceOrigin("api", 4)])
    assert shares["db"].share == 0.5 and shares["db"].origin.count == 4 and shares["db"].origin.trace_id == "t1"
    assert origin_shares([TraceOrigin("x", 0)]) == {}


def test_upstream_and_paths_follow_calls_up() -> None:
    callers = {"db": ["payment", "report"], "payment": ["checkout"], "checkout": ["frontend"]}
    assert upstream_hops("db", callers) == {"payment": 1, "report": 1, "checkout": 2, "frontend": 3}
    assert list(upstream_hops("db", callers)) == ["payment", "report", "checkout", "frontend"]  # nearest first
    llr = {"payment": 3.0, "checkout": 2.0, "report": -2.0}
    paths = best_paths("db", callers, llr)
    assert paths["frontend"][1] == ["db", "payment", "checkout", "frontend"]
    assert best_paths("frontend", callers, llr) == {}


def test_rank_prefers_the_origin_that_explains_what_moved() -> None:
    callers = {"db": ["payment"], "payment": ["frontend"]}
    llr = {"db": 2.0, "payment": 4.0, "frontend": 5.0, "noise": 6.0}
    own = {"db": 2.0, "payment": 0.5, "frontend": -1.0, "noise": 6.0}  # what the dependencies do not explain
    ranked = rank(["db", "payment", "frontend", "noise"], callers, llr, {}, ["frontend"], own=own, target="frontend")
    names = [h.service for h in ranked]
    assert names[0] == "db" and names.index("payment") < names.index("frontend")
    noise = next(h for h in ranked if h.service == "noise")
    assert noise.log_score < ranked[0].log_score - 3
    assert any("cannot explain frontend" in e.text for e in noise.evidence)
    assert 0 < sum(h.probability for h in ranked) < 1  # "none of these" keeps some
    # An alert (not the named SLO) it cannot reach is left to the background: it costs less.
    as_alert = rank(["db", "noise"], callers, llr, {}, ["frontend"], own=own)
    assert [h.service for h in as_alert] == ["db", "noise"]
    assert next(h for h in as_alert if h.service == "noise").log_score > noise.log_score
