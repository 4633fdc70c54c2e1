"""Incidents: correlated alerts, anomalies and predictions with why each belongs; the value type of ``incidents``."""

from __future__ import annotations

import enum
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from aiops_common.schemas._codec import SchemaError, decode_envelope, encode_envelope
from aiops_common.schemas._ids import record_id
from aiops_common.schemas._model import VersionedRecord

__all__ = [
    "CorrelationBatch",
    "CorrelationTick",
    "IncidentCommand",
    "IncidentMember",
    "IncidentMerge",
    "IncidentRecord",
    "IncidentSeverity",
    "IncidentStatus",
    "JoinReason",
    "LinkedChange",
    "MemberKind",
    "StatusChange",
    "incident_id",
]


def incident_id(seed_fingerprint: str) -> str:
    """Deterministic id of the incident a cluster's first member opened: replays open the same one.

    >>> incident_id("a1b2") == incident_id("a1b2") != incident_id("a1b3")
    True
    """
    return record_id("inc", seed_fingerprint)


class IncidentStatus(enum.StrEnum):
    """The lifecycle: open -> acknowledged -> mitigated -> resolved (and reopened to open)."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    MITIGATED = "mitigated"
    RESOLVED = "resolved"


class IncidentSeverity(enum.StrEnum):
    """Ordered: ``info`` < ``warning`` < ``minor`` < ``major`` < ``critical``."""

    INFO = "info"
    WARNING = "warning"
    MINOR = "minor"
    MAJOR = "major"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return list(IncidentSeverity).index(self)


class MemberKind(enum.StrEnum):
    ALERT = "alert"
    ANOMALY = "anomaly"
    PREDICTION = "prediction"


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class JoinReason(_Part):
    """Why a member is in its incident: the rule that put it there and the evidence the rule used."""

    rule: str
    """``seed`` (it opened the incident), ``topology`` (a service within ``hops`` of a member's, in the
    window), ``same_service``, ``labels`` (similar labels in the window), ``change`` (its service had the
    same recent change as a member's), ``same_signal`` (another episode of a member's signal), ``merge``
    (it came with an incident merged into this one), ``feedback`` (an operator put it here)."""
    related_to: str = ""
    """Fingerprint of the member it was matched against (empty for ``seed``)."""
    gap_s: float | None = None
    """Seconds between that member's onset and this one's (positive: this one came later)."""
    path: list[str] = Field(default_factory=list)
    """Services from that member's to this one's along the topology (``topology`` rule)."""
    similarity: float | None = None
    """Label/attribute similarity in [0, 1] with that member."""
    score: float = 1.0
    """The combined score the rule compared with its threshold."""
    text: str = ""
    """One line for people, e.g. ``checkout calls payment (1 hop), 40 s after payment/HighLatency``."""


class IncidentMember(_Part):
    """One alert, anomaly or prediction of an incident."""

    fingerprint: str
    """Alertmanager's fingerprint for an alert, the anomaly id for an anomaly, the prediction id."""
    kind: MemberKind
    name: str
    """Alert name, or the series name of an anomaly or prediction."""
    service: str = ""
    severity: IncidentSeverity = IncidentSeverity.WARNING
    labels: dict[str, str] = Field(default_factory=dict)
    started_at: datetime
    ended_at: datetime | None = None
    """When it resolved; None while it fires (anomalies and predictions end when their window does)."""
    occurrences: int = Field(default=1, ge=1)
    """Episodes of the same signal folded into this member (an anomaly re-detected window after window)."""
    last_seen_at: datetime | None = None
    """Onset of the latest of those episodes; None while there was one."""
    lead: bool = False
    """True for the incident's representative member, its probable origin; the others are suppressed in
    notifications but kept."""
    reason: JoinReason
    joined_at: datetime
    """Event time at which it joined."""


class LinkedChange(_Part):
    """A deployment or other change on an affected service shortly before onset."""

    id: str
    service: str
    kind: str = "deployment"
    version: str = ""
    at: datetime
    before_onset_s: float
    """Seconds from the change to the incident's onset (negative: the change came after onset)."""
    text: str = ""
    """e.g. ``payment v2.4.1 deployed 8 min before onset``."""


class IncidentMerge(_Part):
    """Another incident that became connected to this one and was folded into it."""

    incident_id: str
    at: datetime
    reason: str


class StatusChange(_Part):
    status: IncidentStatus
    at: datetime
    by: str = "correlation"
    note: str = ""


class IncidentRecord(VersionedRecord):
    """An incident as of one change; published to ``incidents`` on every change, newest ``revision`` wins."""

    schema_name = "incidents.incident"

    id: str
    """``incident_id(fingerprint of the member that opened it)``."""
    revision: int = Field(ge=1)
    """1 when opened, one more on every change; a consumer keeps the highest it saw."""
    title: str
    summary: str = ""
    status: IncidentStatus = IncidentStatus.OPEN
    severity: IncidentSeverity
    services: list[str] = Field(default_factory=list)
    """Affected services, the lead's first, then by name."""
    started_at: datetime
    """Onset: the earliest member's start."""
    updated_at: datetime
    """Event time of the latest change."""
    resolved_at: datetime | None = None
    members: list[IncidentMember]
    changes: list[LinkedChange] = Field(default_factory=list)
    merged: list[IncidentMerge] = Field(default_factory=list)
    """Incidents folded into this one."""
    merged_into: str | None = None
    """Set on an incident that was folded into another (it is then resolved and keeps no members)."""
    history: list[StatusChange] = Field(default_factory=list)

    @property
    def lead(self) -> IncidentMember | None:
        return next((m for m in self.members if m.lead), None)

    def member(self, fingerprint: str) -> IncidentMember | None:
        return next((m for m in self.members if m.fingerprint == fingerprint), None)

    def document(self) -> dict[str, object]:
        """The body kept in the document store's ``incidents`` collection, with its members and changes counted
        (a list of incidents reads those fields alone, not every member: ``DocumentStore.query(fields=...)``)."""
        return {**self.model_dump(mode="json"), "member_count": len(self.members), "change_count": len(self.changes)}


class IncidentCommand(VersionedRecord):
    """A person's lifecycle change of an incident (acknowledge, mitigate, resolve, reopen), with who and why."""

    schema_name = "incidents.command"

    incident_id: str
    status: IncidentStatus
    by: str
    at: datetime
    note: str = ""


class CorrelationTick(VersionedRecord):
    """The correlator's clock: written to its input so that a replay sees the same ticks at the same places.

    The correlator's time is event time: the latest it has seen, plus ``idle_ms``, how long (wall clock) it
    had taken no record when the tick was written. So a live stream's clock follows the wall clock, a
    quiet one moves on by itself, and history sent later (a backfill, a replayed incident) is judged by
    its own time, not resolved on arrival because the wall clock is days ahead.
    """

    schema_name = "correlation.tick"

    at: datetime
    """Wall-clock time of the tick (for people)."""
    idle_ms: int = Field(default=0, ge=0)


class CorrelationBatch:
    """Records forwarded together onto ``correlation.events``, each still in its own envelope, in order.

    The broker costs about the same per message whatever its size, so the correlator's input
    carries what the forwarder took from a topic in one go as one message.
    """

    schema_name = "correlation.batch"
    schema_version = 1

    def __init__(self, records: list[bytes]) -> None:
        self.records = records

    def encode(self) -> bytes:
        return encode_envelope(self.schema_name, self.schema_version, {"records": self.records})

    @classmethod
    def decode(cls, data: bytes) -> CorrelationBatch:
        _, body = decode_envelope(data, cls.schema_name, (cls.schema_version,))
        records = body.get("records")
        if not isinstance(records, list) or not all(isinstance(r, bytes) for r in records):
            raise SchemaError(f"malformed {cls.schema_name}: records must be a list of encoded records")
        return cls(records)
