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
    NOT_IN_INCIDENT = "not_in_incident"
    """Split: ``related_id`` (a member's fingerprint) does not belong in incident ``subject_id``."""
    SAME_INCIDENT = "same_incident"
    """Merge: incidents ``subject_id`` and ``related_id`` are one."""
    CONFIRMED_CAUSE = "confirmed_cause"
    """Root cause: service ``related_id`` caused incident ``subject_id`` (``subject_kind`` ``incident``)."""
    WRONG_CAUSE = "wrong_cause"
    """Root cause: service ``related_id``, ranked for incident ``subject_id``, did not cause it."""
    REMEDIATED = "remediated"
    """Execution ``subject_id`` (``subject_kind`` ``execution``) of runbook ``related_id`` brought its series back."""
    NOT_REMEDIATED = "not_remediated"
    """Execution ``subject_id`` of runbook ``related_id`` failed, was rolled back or was interrupted."""


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
    related_id: str = ""
    """The second subject of a label about two (a member to split off, an incident to merge with)."""

    @property
    def id(self) -> str:
        """Deterministic: the same label delivered again has the same id."""
        parts = [self.subject_kind, self.subject_id, self.label.value, self.by, self.at.isoformat()]
        return record_id("fb", *parts, *([self.related_id] if self.related_id else []))
