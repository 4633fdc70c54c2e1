"""The feedback store protocol: operator labels, the anomalies they name, and each series' sensitivity."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from aiops_common.schemas import AnomalyRecord, FeedbackLabel, FeedbackRecord

__all__ = ["FeedbackStore", "Sensitivity", "StoredLabel"]


@dataclass(frozen=True, slots=True)
class Sensitivity:
    """How far operator feedback has moved one series' alert thresholds; the defaults mean "not moved".

    ``slack``: band widths a value must exceed beyond its expected band to alert.
    ``min_score``: the score an anomaly without a band must beat (None: the alert score).
    Detection decides how labels move them (``aiops_detection.detectors.sensitivity``).
    """

    slack: float = 0.0
    min_score: float | None = None
    false_positives: int = 0
    true_positives: int = 0


@dataclass(frozen=True, slots=True)
class StoredLabel:
    """A kept label and whether it has been applied: ``applied_at`` and the series it moved, or None while pending."""

    feedback: FeedbackRecord
    applied_at: datetime | None = None
    series_key: str | None = None


@runtime_checkable
class FeedbackStore(Protocol):
    """Labels on anomalies (later incidents and executions), the anomalies they name, and per-series sensitivity.

    Written by detection (anomaly archive, label agent) and the CLI; read by training,
    and by any layer that shows or learns from operator feedback.
    """

    url: str

    async def record_anomaly(self, anomaly: AnomalyRecord) -> None:
        """Keep an anomaly under its id (a second delivery replaces the first, which it equals)."""

    async def anomaly(self, anomaly_id: str) -> AnomalyRecord | None: ...

    async def add_label(self, feedback: FeedbackRecord) -> bool:
        """Keep a label, pending; False when this exact label (``feedback.id``) was already kept."""

    async def labels(self, subject_id: str | None = None) -> list[FeedbackRecord]:
        """Labels, oldest first, of one subject or of all."""

    async def label(self, label_id: str) -> StoredLabel | None:
        """One kept label by ``FeedbackRecord.id``, with whether and where it was applied."""

    async def labelled_anomalies(self, label: FeedbackLabel) -> list[AnomalyRecord]:
        """Anomalies whose latest label is ``label``."""

    async def series_labels(self, series_key: str) -> list[tuple[AnomalyRecord, FeedbackRecord]]:
        """Every label on an anomaly of this series with that anomaly, oldest label first."""

    async def sensitivity(self, series_key: str) -> Sensitivity: ...

    async def sensitivities(self, series_keys: Iterable[str]) -> dict[str, Sensitivity]:
        """The sensitivity of every series given (defaults for those without feedback)."""

    async def record_applied(
        self, series_key: str, sensitivity: Sensitivity, label_ids: Iterable[str], at: datetime
    ) -> None:
        """Store a series' sensitivity and mark the labels it was computed from applied, in one transaction."""

    async def close(self) -> None: ...
