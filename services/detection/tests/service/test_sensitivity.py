"""Per-series thresholds moved by operator labels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from aiops_common.schemas import AnomalyRecord, AnomalySeverity, FeedbackLabel, FeedbackRecord
from aiops_detection.detectors.sensitivity import (
    Sensitivity,
    admits,
    after_false_positive,
    after_true_positive,
    band_excess,
    fold_labels,
)

pytestmark = pytest.mark.unit

AT = datetime(2026, 1, 1, tzinfo=UTC)


def anomaly(value: float | None, lower: float | None, upper: float | None, score: float = 0.9) -> AnomalyRecord:
    return AnomalyRecord(
        id=f"an-{value}-{score}",
        series_name="cpu",
        series_key='cpu{host="a"}',
        window_start=AT,
        window_end=AT + timedelta(minutes=1),
        value=value,
        score=score,
        lower=lower,
        upper=upper,
        severity=AnomalySeverity.MAJOR,
        detector="cascade",
        detected_at=AT,
    )


def label(subject: AnomalyRecord, kind: FeedbackLabel, minutes: int = 0) -> FeedbackRecord:
    return FeedbackRecord(subject_id=subject.id, label=kind, by="ops", at=AT + timedelta(minutes=minutes))


def test_band_excess_in_band_widths() -> None:
    assert band_excess(14.0, 8.0, 12.0) == 0.5
    assert band_excess(6.0, 8.0, 12.0) == 0.5
    assert band_excess(10.0, 8.0, 12.0) == -0.5
    assert band_excess(10.0, None, 12.0) is None
    assert band_excess(None, 8.0, 12.0) is None


def test_a_false_positive_silences_the_same_deviation_but_not_a_larger_one() -> None:
    fp = after_false_positive(Sensitivity(), 0.9, 14.0, 8.0, 12.0, margin=1.25)
    assert fp.slack == 0.625 and fp.false_positives == 1
    assert not admits(fp, 0.9, 14.0, 8.0, 12.0, 0.5)
    assert not admits(fp, 1.0, 14.4, 8.0, 12.0, 0.5)  # up to the margin: still quiet
    assert admits(fp, 0.9, 15.0, 8.0, 12.0, 0.5)
    assert not admits(fp, 0.4, 30.0, 8.0, 12.0, 0.5)  # below the alert score is never an alert
    assert admits(Sensitivity(), 0.6, 11.0, 8.0, 12.0, 0.5)  # by default the score alone decides


def test_without_a_band_a_false_positive_raises_the_score_to_beat() -> None:
    fp = after_false_positive(Sensitivity(), 0.7, None, None, None, margin=1.25)
    assert fp.min_score == 0.7 and fp.slack == 0.0
    assert not admits(fp, 0.7, None, None, None, 0.5)
    assert admits(fp, 0.71, None, None, None, 0.5)
    assert admits(fp, 0.6, 20.0, 8.0, 12.0, 0.5)  # anomalies with a band are judged by the slack


def test_true_positives_tighten_back_to_the_defaults_never_beyond() -> None:
    fp = Sensitivity(slack=1.0, min_score=0.9)
    once = after_true_positive(fp, 0.5)
    assert (once.slack, once.min_score, once.true_positives) == (0.5, 0.7, 1)
    many = once
    for _ in range(10):
        many = after_true_positive(many, 0.5)
    assert (many.slack, many.min_score) == (0.0, None)
    assert after_true_positive(Sensitivity(), 0.5).slack == 0.0


def test_folding_labels_is_idempotent_and_ordered() -> None:
    first, second = anomaly(14.0, 8.0, 12.0), anomaly(16.0, 8.0, 12.0)
    fp1, fp2 = label(first, FeedbackLabel.FALSE_POSITIVE), label(second, FeedbackLabel.FALSE_POSITIVE, 1)
    tp = label(second, FeedbackLabel.TRUE_POSITIVE, 2)
    once = fold_labels([(first, fp1)], 0.5, 1.25)
    assert fold_labels([(first, fp1), (first, fp1)], 0.5, 1.25) == once
    both = fold_labels([(first, fp1), (second, fp2)], 0.5, 1.25)
    assert both.slack == 1.25 * 1.0 and both.false_positives == 2
    assert fold_labels([(first, fp1), (second, fp2), (second, tp)], 0.5, 1.25).slack == 0.625
