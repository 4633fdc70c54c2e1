"""Runbook executions and the decisions about them: the value types of ``actions`` and ``approvals``.

An execution is one attempt to run one runbook for one incident. Its whole life is one record: proposed (with
its blast radius, the approvals the policy requires and the dry run the approvers see), decided, run step by
step (each step's start and end journaled before the next, so a restarted worker never runs a step twice),
verified against the TSDB, and mitigated or rolled back. The action service keeps it as a document
(collection ``executions``) and publishes every new state on ``actions``; people's decisions come in on
``approvals`` as :class:`ApprovalRecord`.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from aiops_common.schemas._ids import record_id
from aiops_common.schemas._model import VersionedRecord

__all__ = [
    "ApprovalDecision",
    "ApprovalRecord",
    "BlastRadius",
    "Decision",
    "ExecutionRecord",
    "ExecutionStatus",
    "ParamValue",
    "StepPhase",
    "StepRecord",
    "StepState",
    "Transition",
    "VerificationRecord",
    "execution_document",
    "execution_id",
]

ParamValue = str | int | float | bool


class ExecutionStatus(enum.StrEnum):
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    RUNNING = "running"
    VERIFYING = "verifying"
    SUCCEEDED = "succeeded"
    """The verification saw the series back in its band: the incident was mitigated."""
    ROLLED_BACK = "rolled_back"
    """A step failed or the verification did not see recovery in time: the rollback ran; escalated."""
    ROLLBACK_FAILED = "rollback_failed"
    FAILED = "failed"
    """A step failed and the runbook has no rollback; escalated."""
    INTERRUPTED = "interrupted"
    """The worker stopped during a step: its outcome is unknown and it is not run again; escalated."""
    REJECTED = "rejected"
    EXPIRED = "expired"
    """Nobody decided within the approval TTL; escalated."""
    REFUSED = "refused"
    """The runbook could not be resolved for this incident (a parameter without a valid value): nothing ran."""
    SUPERSEDED = "superseded"
    """Still waiting for approval when a newer RCA ranking of its incident fitted another runbook or target: the
    matcher proposed that one (``superseded_by``) instead; nothing ran, and approvals given do not carry over."""

    @property
    def terminal(self) -> bool:
        return self not in _ACTIVE

    @property
    def failed(self) -> bool:
        """An outcome that counts against progressive automation and escalates."""
        return self in _FAILED


_ACTIVE = frozenset(
    {ExecutionStatus.PENDING_APPROVAL, ExecutionStatus.APPROVED, ExecutionStatus.RUNNING, ExecutionStatus.VERIFYING}
)
_FAILED = frozenset(
    {
        ExecutionStatus.ROLLED_BACK,
        ExecutionStatus.ROLLBACK_FAILED,
        ExecutionStatus.FAILED,
        ExecutionStatus.INTERRUPTED,
    }
)


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StepPhase(enum.StrEnum):
    STEPS = "steps"
    ROLLBACK = "rollback"


class StepState(enum.StrEnum):
    PENDING = "pending"
    STARTED = "started"
    """Journaled before the executor is called: a step found ``started`` after a restart is in doubt."""
    OK = "ok"
    FAILED = "failed"
    UNKNOWN = "unknown"
    """It was running when its worker stopped: it may or may not have taken effect; never run again."""
    SKIPPED = "skipped"


class StepRecord(_Part):
    """One resolved step (every value checked, nothing templated) and what became of it."""

    name: str
    kind: str
    action: str
    arguments: dict[str, Any]
    timeout_s: float = 60.0
    state: StepState = StepState.PENDING
    summary: str = ""
    output: str = ""
    details: dict[str, Any] = Field(default_factory=dict)
    started_at: datetime | None = None
    finished_at: datetime | None = None


class Decision(_Part):
    """One person's approval or rejection."""

    by: str
    role: str = ""
    decision: str
    """``approve`` or ``reject``."""
    at: datetime
    comment: str = ""
    via: str = ""


class BlastRadius(_Part):
    """What an execution touches: the services its steps change and those that call them (from the topology
    store), their pods where the topology says, the environment, and whether that is a high blast radius."""

    services: list[str] = Field(default_factory=list)
    targets: list[str] = Field(default_factory=list)
    """The services the steps change themselves."""
    pods: int | None = None
    environment: str = ""
    high: bool = False
    reasons: list[str] = Field(default_factory=list)
    missing: str = ""
    """Why the topology could not be read, when it could not (the radius is then the targets only)."""

    def describe(self) -> str:
        pods = f", {self.pods} pods" if self.pods is not None else ""
        env = f" in {self.environment}" if self.environment else ""
        size = "high" if self.high else "contained"
        return f"{size}: {len(self.services)} services ({', '.join(self.services)}){pods}{env}"


class VerificationRecord(_Part):
    """The check after the steps: ``series`` matching ``match`` back inside [lower, upper] for ``for_s`` seconds,
    within ``within_s`` of ``started_at``."""

    series: str
    match: dict[str, str] = Field(default_factory=dict)
    lower: float | None = None
    upper: float | None = None
    within_s: float
    for_s: float
    started_at: datetime | None = None
    checked_at: datetime | None = None
    last_value: float | None = None
    inside_since: datetime | None = None
    recovered: bool | None = None
    detail: str = ""


class Transition(_Part):
    at: datetime
    status: str
    by: str
    note: str = ""


class ExecutionRecord(VersionedRecord):
    """One execution's whole life (see the module's text)."""

    schema_name = "actions.execution"

    id: str
    incident_id: str
    attempt: int = Field(ge=1)
    runbook_id: str
    runbook_version: int = 1
    title: str = ""
    risk: str = "medium"
    cause_service: str = ""
    cause_kind: str = ""
    cause_rank: int = 0
    rca_id: str = ""
    """The RCA result the matcher proposed it from (empty for a person's request)."""
    rca_revision: int = 0
    """That result's incident revision: a ranking of the same or an older revision never supersedes it."""
    services: list[str] = Field(default_factory=list)
    """The blast radius's services (indexed: an incident page finds the executions that touch its services)."""
    parameters: dict[str, ParamValue] = Field(default_factory=dict)
    parameter_sources: dict[str, str] = Field(default_factory=dict)
    blast_radius: BlastRadius = Field(default_factory=BlastRadius)
    required_approvals: int = Field(default=1, ge=0)
    auto_approved: bool = False
    policy: str = ""
    """Why the policy asked for what it asked (or approved it by itself)."""
    requested_by: str
    requested_at: datetime
    expires_at: datetime | None = None
    note: str = ""
    replaces: str = ""
    """The execution this one superseded (a newer ranking moved the cause), if any."""
    superseded_by: str = ""
    """The execution proposed instead of this one, when it is ``superseded``."""
    approvals: list[Decision] = Field(default_factory=list)
    status: ExecutionStatus
    steps: list[StepRecord] = Field(default_factory=list)
    rollback: list[StepRecord] = Field(default_factory=list)
    dry_run: list[StepRecord] = Field(default_factory=list)
    """What each step would do, as its executor's dry run said when the execution was proposed."""
    verification: VerificationRecord | None = None
    phase: StepPhase = StepPhase.STEPS
    """Which list of steps is being run: the runbook's, or its rollback."""
    owner: str = ""
    """The worker running it (while ``running``), holding it until ``lease_until``."""
    lease_until: datetime | None = None
    error: str = ""
    updated_at: datetime
    finished_at: datetime | None = None
    history: list[Transition] = Field(default_factory=list)

    def approvers(self) -> list[str]:
        return [d.by for d in self.approvals if d.decision == "approve"]

    def summary(self) -> str:
        target = f" on {self.cause_service}" if self.cause_service else ""
        return f"{self.runbook_id}{target}: {self.status.value}"


def execution_id(incident_id: str, runbook_id: str, attempt: int) -> str:
    """Deterministic: the same incident, runbook and attempt is the same execution wherever it is computed."""
    return record_id("exe", incident_id, runbook_id, attempt)


def execution_document(record: ExecutionRecord) -> dict[str, Any]:
    """The record as the ``executions`` collection keeps it, with the fields the collection indexes."""
    return {
        **record.model_dump(mode="json"),
        "started_at": record.requested_at.isoformat(),
        "action": record.runbook_id,
        "summary": record.summary(),
    }


class ApprovalDecision(enum.StrEnum):
    REQUEST = "request"
    """Ask for a runbook to be run for an incident (``incident_id``, ``runbook_id``, ``parameters``)."""
    APPROVE = "approve"
    REJECT = "reject"


class ApprovalRecord(VersionedRecord):
    """A person's request for, approval of or rejection of an execution (from the gateway or the CLI)."""

    schema_name = "actions.approval"

    decision: ApprovalDecision
    by: str = Field(min_length=1, max_length=200)
    role: str = ""
    via: str = ""
    """``api``, ``cli``."""
    at: datetime
    comment: str = Field(default="", max_length=2000)
    execution_id: str = ""
    """The execution decided on (approve, reject)."""
    incident_id: str = ""
    runbook_id: str = ""
    parameters: dict[str, ParamValue] = Field(default_factory=dict)
    request_id: str = ""
    """The gateway's request id, for the audit log."""

    @property
    def id(self) -> str:
        return record_id(
            "apr",
            self.decision.value,
            self.by,
            self.at.isoformat(),
            self.execution_id,
            self.incident_id,
            self.runbook_id,
        )

    def key(self) -> bytes:
        return (self.execution_id or self.incident_id).encode()
