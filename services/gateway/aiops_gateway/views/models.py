"""Request and response bodies of the incidents, RCA and feedback routes, as the OpenAPI document shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from aiops_common.schemas import (
    AnomalyRecord,
    CauseKind,
    ExecutionRecord,
    FeedbackLabel,
    FeedbackRecord,
    IncidentRecord,
    IncidentSeverity,
    IncidentStatus,
    RcaResult,
)
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "MAX_NOTE",
    "ChangeView",
    "FeedbackAccepted",
    "FeedbackList",
    "FeedbackRequest",
    "IncidentDetail",
    "IncidentList",
    "IncidentSummary",
    "LifecycleAccepted",
    "LifecycleRequest",
    "LogLine",
    "MergeRequest",
    "SplitRequest",
    "TimelineEntry",
    "TopCause",
]

MAX_NOTE = 2000
"""Longest note a person may attach to a lifecycle change or a label."""


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TopCause(BaseModel):
    """The best-ranked root cause of the incident's latest analysis."""

    service: str
    probability: float
    kind: CauseKind


class IncidentSummary(BaseModel):
    """One incident in a list: what it is, where, how bad, and its likeliest cause."""

    id: str
    title: str
    summary: str = ""
    status: IncidentStatus
    severity: IncidentSeverity
    services: list[str] = Field(description="Affected services, the probable origin's first.")
    started_at: datetime = Field(description="Onset: the earliest member's start.")
    updated_at: datetime
    resolved_at: datetime | None = None
    member_count: int = Field(description="Alerts, anomalies and predictions in the incident.")
    change_count: int = Field(description="Deployments and other changes linked to it by correlation.")
    revision: int
    top_cause: TopCause | None = Field(
        default=None, description="The best-ranked cause of its latest root-cause analysis; null before one."
    )


class IncidentList(BaseModel):
    incidents: list[IncidentSummary] = Field(description="Newest onset first.")
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next page, with the same filters; null on the last."
    )


class ChangeView(BaseModel):
    """A deployment or other change linked to the incident: by correlation, or on one of its services since
    30 minutes before onset (from the topology store)."""

    id: str
    service: str
    kind: str = "deployment"
    at: datetime
    version: str = ""
    text: str = Field(default="", description="One line for people.")
    before_onset_s: float = Field(description="Seconds from the change to onset (negative: after onset).")
    source: Literal["correlation", "topology"] = Field(
        description="`correlation`: linked when the incident was built; `topology`: a change of its services."
    )
    attributes: dict[str, str | int | float | bool] = Field(default_factory=dict)


class LogLine(BaseModel):
    """A log line of an affected service around onset (the ``logs`` collection)."""

    id: str
    at: datetime
    services: list[str] = Field(default_factory=list)
    severity: str = ""
    source: str = ""
    message: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    trace_id: str = ""
    span_id: str = ""


class TimelineEntry(BaseModel):
    at: datetime
    kind: Literal["member", "status", "change", "merge", "rca"] = Field(
        description="`member`: a signal joined; `status`: a lifecycle change; `change`: a deployment or other"
        " change; `merge`: another incident was folded in; `rca`: a root-cause analysis finished."
    )
    text: str


class IncidentDetail(BaseModel):
    """Everything the incident page shows."""

    incident: IncidentRecord = Field(
        description="The incident as correlation stored it: members with why each joined, changes, history, merges."
    )
    rca: RcaResult | None = Field(
        default=None, description="Its latest root-cause analysis, with every cause and its evidence; null before one."
    )
    changes: list[ChangeView] = Field(description="Linked changes, oldest first, each once.")
    logs: list[LogLine] = Field(
        description="Log lines of its services from 15 min before to 15 min after onset: errors and warnings first,"
        " then the others, each part oldest first; at most 200."
    )
    anomalies: list[AnomalyRecord] = Field(
        description="The anomaly members as detection recorded them, each with its expected band (lower, upper)."
    )
    actions: list[ExecutionRecord] = Field(
        default_factory=list,
        description="The incident's runbook executions, newest first (at most 20): each with its blast radius, the"
        " approvals the policy requires and those given, its dry run, steps, verification and history.",
    )
    timeline: list[TimelineEntry] = Field(description="What happened, oldest first.")
    missing: list[str] = Field(
        default_factory=list,
        description="Parts left empty because their store could not be read (`topology`, `logs`, `anomalies`),"
        " each with why.",
    )


class LifecycleRequest(_Request):
    note: str = Field(default="", max_length=MAX_NOTE, description="Why, for the incident's history.")


class LifecycleAccepted(BaseModel):
    """The change was sent to correlation, which records it in the incident's history."""

    incident_id: str
    status: IncidentStatus
    by: str
    at: datetime


class SplitRequest(_Request):
    fingerprint: str = Field(min_length=1, max_length=512, description="The member that does not belong.")
    note: str = Field(default="", max_length=MAX_NOTE)


class MergeRequest(_Request):
    other_id: str = Field(min_length=1, max_length=512, description="The incident that is the same one.")
    note: str = Field(default="", max_length=MAX_NOTE)


class FeedbackRequest(_Request):
    subject_kind: Literal["anomaly", "incident"]
    subject_id: str = Field(min_length=1, max_length=512, description="The anomaly's or the incident's id.")
    label: FeedbackLabel = Field(
        description="`true_positive`/`false_positive`: on an anomaly. On an incident: `not_in_incident` (related_id:"
        " a member's fingerprint), `same_incident` (related_id: the other incident), `confirmed_cause`/`wrong_cause`"
        " (related_id: a service of the incident or ranked by its analysis)."
    )
    related_id: str = Field(default="", max_length=512)
    note: str = Field(default="", max_length=MAX_NOTE)


class FeedbackAccepted(BaseModel):
    """A label as sent to the platform (and as the feedback store keeps it)."""

    id: str = Field(description="The label's id: the same label sent again has the same id.")
    subject_kind: str
    subject_id: str
    label: FeedbackLabel
    related_id: str = ""
    by: str
    at: datetime
    note: str = ""

    @classmethod
    def of(cls, record: FeedbackRecord) -> FeedbackAccepted:
        return cls(
            id=record.id,
            subject_kind=record.subject_kind,
            subject_id=record.subject_id,
            label=record.label,
            related_id=record.related_id,
            by=record.by,
            at=record.at,
            note=record.note,
        )


class FeedbackList(BaseModel):
    labels: list[FeedbackAccepted] = Field(description="Oldest first, the newest last.")
