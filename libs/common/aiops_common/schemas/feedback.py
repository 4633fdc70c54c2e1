"""Operator feedback and outcomes about anomalies and other subjects: the value type of ``feedback``."""

from __future__ import annotations

import enum
from datetime import datetime

from aiops_common.schemas._ids import record_id
from aiops_common.schemas._model import VersionedRecord

__all__ = ["FeedbackLabel", "FeedbackRecord"]


class FeedbackLabel(enum.StrEnum):
    TRUE_POSITIVE = "true_positive"
    FALSE_POSITIVE = "false_positive"


class FeedbackRecord(VersionedRecord):
    """A label on a subject (an anomaly id, later incidents and executions) by a person or a component."""

    schema_name = "feedback.label"

    subject_id: str
    """What is labelled, e.g. an ``AnomalyRecord.id``."""
    subject_kind: str = "anomaly"
    label: FeedbackLabel
    by: str
    at: datetime
    note: str = ""

    @property
    def id(self) -> str:
        """Deterministic: the same label delivered again has the same id."""
        return record_id("fb", self.subject_kind, self.subject_id, self.label.value, self.by, self.at.isoformat())
