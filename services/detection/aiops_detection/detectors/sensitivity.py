"""Per-series thresholds that operator feedback moves: a false positive desensitises, a true positive tightens.

Two knobs, both starting at "no change":

- ``slack``: band widths added on each side of a detector's expected band. With
  slack ``k`` a value alerts only if it lands more than ``k`` band widths beyond the
  band. A false positive with a band sets ``k`` to ``margin`` times that anomaly's
  own excess, so the same deviation (and anything up to ``margin`` times it) stays
  quiet from then on, while a larger one still alerts.
- ``min_score``: for anomalies without a band (silence, latency), the score a later
  anomaly must beat.

A true positive halves both moves back towards the defaults; labels never make a
series more sensitive than the configured defaults.

The state itself (:class:`~aiops_common.feedback.Sensitivity`) lives in the feedback
store, which other layers read; how labels move it is decided here.

>>> s = after_false_positive(Sensitivity(), score=0.9, value=14.0, lower=8.0, upper=12.0, margin=1.25)
>>> s.slack  # 14 is half a band width (4) above 12
0.625
>>> admits(s, score=0.9, value=14.0, lower=8.0, upper=12.0, alert_score=0.5)
False
>>> admits(s, score=0.9, value=16.0, lower=8.0, upper=12.0, alert_score=0.5)
True
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import replace

from aiops_common.feedback import Sensitivity
from aiops_common.schemas import AnomalyRecord, FeedbackLabel, FeedbackRecord

__all__ = [
    "Sensitivity",
    "admits",
    "after_false_positive",
    "after_true_positive",
    "band_excess",
    "fold_labels",
    "with_override",
]

_NEGLIGIBLE = 0.01


def band_excess(value: float | None, lower: float | None, upper: float | None) -> float | None:
    """How far ``value`` lies beyond ``[lower, upper]`` in band widths (negative inside); None without a band."""
    if value is None or lower is None or upper is None or not math.isfinite(value):
        return None
    if not (math.isfinite(lower) and math.isfinite(upper)):
        return None
    width = max(upper - lower, 1e-9 * max(abs(lower), abs(upper), 1.0))
    return max(value - upper, lower - value) / width


def admits(
    sensitivity: Sensitivity,
    score: float,
    value: float | None,
    lower: float | None,
    upper: float | None,
    alert_score: float,
) -> bool:
    """Whether an anomaly with this score, value and expected band alerts on a series of this sensitivity."""
    if score < alert_score:
        return False
    excess = band_excess(value, lower, upper)
    if excess is None:
        return sensitivity.min_score is None or score > sensitivity.min_score
    return sensitivity.slack <= 0.0 or excess > sensitivity.slack


def after_false_positive(
    sensitivity: Sensitivity, score: float, value: float | None, lower: float | None, upper: float | None, margin: float
) -> Sensitivity:
    excess = band_excess(value, lower, upper)
    if excess is not None and excess > 0.0:
        return replace(
            sensitivity,
            slack=max(sensitivity.slack, margin * excess),
            false_positives=sensitivity.false_positives + 1,
        )
    floor = score if sensitivity.min_score is None else max(sensitivity.min_score, score)
    return replace(sensitivity, min_score=floor, false_positives=sensitivity.false_positives + 1)


def after_true_positive(sensitivity: Sensitivity, alert_score: float) -> Sensitivity:
    slack = sensitivity.slack / 2.0
    min_score = sensitivity.min_score
    if min_score is not None:
        min_score = alert_score + (min_score - alert_score) / 2.0
        if min_score - alert_score < _NEGLIGIBLE:
            min_score = None
    return replace(
        sensitivity,
        slack=slack if slack >= _NEGLIGIBLE else 0.0,
        min_score=min_score,
        true_positives=sensitivity.true_positives + 1,
    )


def fold_labels(
    labelled: Iterable[tuple[AnomalyRecord, FeedbackRecord]], alert_score: float, margin: float
) -> Sensitivity:
    """A series' sensitivity from every label on its anomalies, oldest first.

    Recomputed from all labels rather than updated in place, so a label delivered
    twice, or before its anomaly reached the store, moves nothing twice.
    """
    sensitivity = Sensitivity()
    seen: set[str] = set()
    for anomaly, feedback in labelled:
        if feedback.id in seen:
            continue
        seen.add(feedback.id)
        if feedback.label == FeedbackLabel.FALSE_POSITIVE:
            sensitivity = after_false_positive(
                sensitivity, anomaly.score, anomaly.value, anomaly.lower, anomaly.upper, margin
            )
        else:
            sensitivity = after_true_positive(sensitivity, alert_score)
    return sensitivity


def with_override(sensitivity: Sensitivity, slack: float, min_score: float | None) -> Sensitivity:
    """What feedback learned with an operator's override on top: its slack added, the higher ``min_score`` kept.

    >>> with_override(Sensitivity(slack=0.5, min_score=0.6), slack=1.0, min_score=0.7)
    Sensitivity(slack=1.5, min_score=0.7, false_positives=0, true_positives=0)
    """
    if slack <= 0.0 and min_score is None:
        return sensitivity
    floor = sensitivity.min_score
    if min_score is not None:
        floor = min_score if floor is None else max(floor, min_score)
    return replace(sensitivity, slack=sensitivity.slack + slack, min_score=floor)
