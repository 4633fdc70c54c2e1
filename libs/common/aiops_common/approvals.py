"""The approval rules of executions, one copy for the action worker, the gateway and the CLI (pure, no I/O).

Who may decide on an execution and what a decision does to it: only an execution waiting for approval
(``pending_approval``) and not past its ``expires_at`` can be decided on; a requester never approves its own request
(it may reject it: a withdrawal); the same person cannot approve twice; a rejection ends it; it is approved once it
has the distinct approvals it requires. And how a waiting execution ends without a decision: it expires, or it is
superseded by a newer proposal (approvals given to it do not carry over).

The action worker is the authority (it applies :func:`apply_decision` to the stored version); the gateway and the
CLI run :func:`check_decision` first to refuse at once, with the same status and words.
"""

from __future__ import annotations

from datetime import datetime

from aiops_common.schemas.actions import (
    ApprovalDecision,
    ApprovalRecord,
    Decision,
    ExecutionRecord,
    ExecutionStatus,
    Transition,
)

__all__ = [
    "DecisionError",
    "apply_decision",
    "approvals_needed",
    "check_decision",
    "expire",
    "supersede",
    "transition",
]


class DecisionError(ValueError):
    """A decision the rules refuse; ``status`` is the HTTP status that fits (400, 403, 409)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def check_decision(record: ExecutionRecord, by: str, decision: ApprovalDecision, now: datetime) -> None:
    """Raise :class:`DecisionError` when ``by`` may not take ``decision`` on the execution at ``now``."""
    if decision is ApprovalDecision.REQUEST:
        raise DecisionError(400, "a request is not a decision on an execution")
    if record.status is not ExecutionStatus.PENDING_APPROVAL:
        raise DecisionError(
            409, f"execution {record.id} is {record.status.value}, not pending_approval: nothing to decide"
        )
    if record.expires_at is not None and now >= record.expires_at:
        raise DecisionError(409, f"execution {record.id} expired at {record.expires_at.isoformat()}; request it again")
    if decision is ApprovalDecision.REJECT:
        return  # anyone who may decide may reject, the requester included (a withdrawal)
    if by == record.requested_by:
        raise DecisionError(403, f"{by} requested execution {record.id}: a requester never approves its own request")
    if by in record.approvers():
        raise DecisionError(409, f"{by} already approved execution {record.id}; another approver must")


def approvals_needed(record: ExecutionRecord, approving: bool) -> int:
    """Distinct approvals still missing once this decision counts."""
    return max(0, record.required_approvals - len(set(record.approvers())) - (1 if approving else 0))


def transition(
    record: ExecutionRecord, status: ExecutionStatus, by: str, note: str, now: datetime, **changes: object
) -> ExecutionRecord:
    """The record in ``status``, with the change in its history (and ``finished_at`` when the status ends it)."""
    update: dict[str, object] = {
        **changes,
        "status": status,
        "updated_at": now,
        "history": [*record.history, Transition(at=now, status=status.value, by=by, note=note)],
    }
    if status.terminal and record.finished_at is None:
        update["finished_at"] = now
    return record.model_copy(update=update)


def apply_decision(record: ExecutionRecord, decision: ApprovalRecord, now: datetime) -> ExecutionRecord:
    """The record after a person's approval or rejection; :class:`DecisionError` when the rules refuse it."""
    check_decision(record, decision.by, decision.decision, now)
    who = Decision(
        by=decision.by,
        role=decision.role,
        decision=decision.decision.value,
        at=decision.at,
        comment=decision.comment,
        via=decision.via,
    )
    approvals = [*record.approvals, who]
    if decision.decision is ApprovalDecision.REJECT:
        note = f"rejected by {decision.by}" + (f": {decision.comment}" if decision.comment else "")
        return transition(record, ExecutionStatus.REJECTED, decision.by, note, now, approvals=approvals)
    given = [d.by for d in approvals if d.decision == "approve"]
    if len(given) < record.required_approvals:
        return record.model_copy(update={"approvals": approvals, "updated_at": now})
    return transition(
        record, ExecutionStatus.APPROVED, decision.by, f"approved by {', '.join(given)}", now, approvals=approvals
    )


def expire(record: ExecutionRecord, now: datetime) -> ExecutionRecord | None:
    """The record expired, when it waited for approval past its time; None otherwise."""
    if record.status is not ExecutionStatus.PENDING_APPROVAL or record.expires_at is None or now < record.expires_at:
        return None
    given = len(record.approvers())
    note = f"no decision within the approval time ({given} of {record.required_approvals} approvals)"
    return transition(record, ExecutionStatus.EXPIRED, "policy", note, now)


def supersede(record: ExecutionRecord, reason: str, now: datetime, *, by: str, replaced_by: str) -> ExecutionRecord:
    """The waiting execution ended in favour of ``replaced_by`` (a newer proposal), ``reason`` in its history;
    approvals it had do not carry over to the new one, and its history says so. :class:`DecisionError` (409) when
    it is not waiting for approval any more: what was approved or runs is never superseded."""
    if record.status is not ExecutionStatus.PENDING_APPROVAL:
        raise DecisionError(
            409, f"execution {record.id} is {record.status.value}, not pending_approval: it cannot be superseded"
        )
    given = record.approvers()
    note = reason
    if given:
        note += (
            f"; {len(given)} of {record.required_approvals} approvals given ({', '.join(given)}) do not carry over:"
            f" {replaced_by} needs its own"
        )
    return transition(record, ExecutionStatus.SUPERSEDED, by, note, now, superseded_by=replaced_by)
