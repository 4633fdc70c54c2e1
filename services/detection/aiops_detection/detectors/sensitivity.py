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

>>> s = Sensitivity().after_false_positive(score=0.9, value=14.0, lower=8.0, upper=12.0, margin=1.25)
>>> s.slack  # 14 is half a band width (4) above 12
0.625
>>> s.admits(score=0.9, value=14.0, lower=8.0, upper=12.0, alert_score=0.5)
False
>>> s.admits(score=0.9, value=16.0, lower=8.0, upper=12.0, alert_score=0.5)
True
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace

from aiops_common.schemas import AnomalyRecord, FeedbackLabel, FeedbackRecord

__all__ = ["Sensitivity", "band_excess", "fold_labels"]

_NEGLIGIBLE = 0.01


def band_excess(value: float | None, lower: float | None, upper: float | None) -> float | None:
    """How far ``value`` lies beyond ``[lower, upper]`` in band widths (negative inside); None without a band."""
    if value is None or lower is None or upper is None or not math.isfinite(value):
        return None
    if not (math.isfinite(lower) and math.isfinite(upper)):
        return None
    width = max(upper - lower, 1e-9 * max(abs(lower), abs(upper), 1.0))
    return max(value - upper, lower - value) / width


@dataclass(frozen=True, slots=True)
class Sensitivity:
    slack: float = 0.0
    min_score: float | None = None
    false_positives: int = 0
    true_positives: int = 0

    def admits(
        self, score: float, value: float | None, lower: float | None, upper: float | None, alert_score: float
    ) -> bool:
        """Whether an anomaly with this score, value and expected band alerts on this series."""
        if score < alert_score:
            return False
        excess = band_excess(value, lower, upper)
        if excess is None:
            return self.min_score is None or score > self.min_score
        return self.slack <= 0.0 or excess > self.slack

    def after_false_positive(
        self, score: float, value: float | None, lower: float | None, upper: float | None, margin: float
    ) -> Sensitivity:
        excess = band_excess(value, lower, upper)
        if excess is not None and excess > 0.0:
            return replace(self, slack=max(self.slack, margin * excess), false_positives=self.false_positives + 1)
        floor = score if self.min_score is None else max(self.min_score, score)
        return replace(self, min_score=floor, false_positives=self.false_positives + 1)

    def after_true_positive(self, alert_score: float) -> Sensitivity:
        slack = self.slack / 2.0
        min_score = self.min_score
        if min_score is not None:
            min_score = alert_score + (min_score - alert_score) / 2.0
            if min_score - alert_score < _NEGLIGIBLE:
                min_score = None
        return replace(
            self,
            slack=slack if slack >= _NEGLIGIBLE else 0.0,
            min_score=min_score,
            true_positives=self.true_positives + 1,
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
            sensitivity = sensitivity.after_false_positive(
                anomaly.score, anomaly.value, anomaly.lower, anomaly.upper, margin
            )
        else:
            sensitivity = sensitivity.after_true_positive(alert_score)
    return sensitivity
