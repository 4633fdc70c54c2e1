"""The NAB scorer against values worked out by hand from NAB's published rules."""

from __future__ import annotations

import math

import numpy as np
import pytest
from aiops_detection.detectors.nab_scorer import PROFILES, LabelledSeries, NabScorer, scaled_sigmoid

pytestmark = pytest.mark.unit


def sigmoid_reward(position: float) -> float:
    """NAB's scaled sigmoid, written out independently of the module."""
    return -1.0 if position > 3.0 else 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


MAX_TP = sigmoid_reward(-1.0)


def toy() -> LabelledSeries:
    # 40 rows: probation = floor(0.15 * 40) = 6 rows; one window over rows 20..29 (width 10).
    return LabelledSeries.from_arrays("toy.csv", np.zeros(40), windows=[(20, 29)])


def detections(rows: list[int], n: int = 40, level: float = 1.0) -> np.ndarray:
    out = np.zeros(n)
    out[rows] = level
    return out


def test_scaled_sigmoid_matches_definition() -> None:
    for position in (-1.0, -0.5, -0.1, 0.0, 0.5, 2.9, 3.5):
        assert float(scaled_sigmoid(position)) == pytest.approx(sigmoid_reward(position))


def test_earliest_detection_in_window_counts_once() -> None:
    scorer = NabScorer([toy()])
    result = scorer.score_at({"toy.csv": detections([24, 27, 29])}, "standard", threshold=0.5)
    # Only row 24 counts: position -(29 - 24 + 1) / 10 = -0.6, rescaled so the window's first row earns 1.
    assert result.raw == pytest.approx(sigmoid_reward(-0.6) / MAX_TP)
    assert (result.tp, result.fp, result.fn) == (1, 0, 0)


def test_false_positives_before_and_after_a_window() -> None:
    scorer = NabScorer([toy()])
    result = scorer.score_at({"toy.csv": detections([10, 20, 33])}, "reward_low_FP_rate", threshold=0.5)
    before = -1.0 * 0.22  # no window on the left: full FP cost
    after = sigmoid_reward((33 - 29) / (10 - 1)) * 0.22  # cheaper right after a window
    assert result.raw == pytest.approx(1.0 + before + after)
    assert result.fp == 2


def test_probationary_rows_are_never_scored() -> None:
    scorer = NabScorer([toy()])
    quiet = scorer.score_at({"toy.csv": detections([20])}, "standard", threshold=0.5)
    noisy = scorer.score_at({"toy.csv": detections([0, 3, 5, 20])}, "standard", threshold=0.5)
    assert noisy.raw == quiet.raw


def test_probation_is_15_percent_capped_at_750() -> None:
    assert LabelledSeries.from_arrays("a", np.zeros(1000)).probation == 150
    assert LabelledSeries.from_arrays("b", np.zeros(10_000)).probation == 750


def test_missed_window_costs_the_profile_fn_weight_and_normalisation() -> None:
    scorer = NabScorer([toy()])
    for name, profile in PROFILES.items():
        missed = scorer.score_at({"toy.csv": np.zeros(40)}, name, threshold=0.5)
        assert missed.raw == -profile.fn_weight
        assert missed.normalised == 0.0  # the null detector scores 0
        perfect = scorer.score({"toy.csv": detections([20])}, name)
        assert perfect.normalised == pytest.approx(100.0)


def test_threshold_sweep_picks_the_best_threshold_over_all_files_jointly() -> None:
    other = LabelledSeries.from_arrays("other.csv", np.zeros(40), windows=[(30, 39)])
    scorer = NabScorer([toy(), other])
    scores = {
        "toy.csv": detections([20], level=0.9) + detections([12], level=0.8),
        "other.csv": detections([30], level=0.7) + detections([15, 16, 17], level=0.95),
    }
    best = scorer.score(scores, "standard")
    candidates = [scorer.score_at(scores, "standard", t).raw for t in (1.1, 0.95, 0.9, 0.8, 0.7, 0.0)]
    assert best.raw == pytest.approx(max(candidates))
    # Catching both windows (threshold 0.7) is worth the four false positives at 0.11 each.
    assert best.threshold == 0.7
    assert best.raw == pytest.approx(2.0 - 4 * 0.11)


def test_twiddle_is_a_local_search_that_can_stop_short_of_the_sweep() -> None:
    scorer = NabScorer([toy()])
    # The only helpful threshold is far below the hill climb's start at 0.5 with its first steps of 0.1.
    scores = {"toy.csv": detections([20], level=0.01)}
    assert scorer.score(scores, "standard").normalised == pytest.approx(100.0)
    assert scorer.score(scores, "standard", search="twiddle").normalised <= 100.0


def test_rejects_scores_of_the_wrong_length() -> None:
    scorer = NabScorer([toy()])
    with pytest.raises(ValueError, match=r"toy\.csv"):
        scorer.score({"toy.csv": np.zeros(39)}, "standard")


def test_breakdown_adds_up_to_the_raw_score() -> None:
    series = LabelledSeries.from_arrays("two.csv", np.zeros(80), windows=[(20, 29), (50, 59)])
    scorer = NabScorer([series])
    # Window 1 caught late (row 27 then 21: the earliest counts), window 2 missed, two false positives.
    result = scorer.score_at({"two.csv": detections([15, 21, 27, 40], n=80)}, "standard", threshold=0.5)
    assert (result.tp, result.fp, result.fn) == (1, 2, 1)
    assert result.tp_reward == pytest.approx(sigmoid_reward(-0.9) / MAX_TP)
    assert result.fn_cost == pytest.approx(1.0)
    assert result.fp_cost == pytest.approx(0.11 * (1.0 - sigmoid_reward((40 - 29) / 9)))
    assert result.raw == pytest.approx(result.tp_reward - result.fp_cost - result.fn_cost)
    assert result.lateness_cost == pytest.approx(1.0 - sigmoid_reward(-0.9) / MAX_TP)
