"""The approval rules shared by the action worker, the gateway and the CLI: who may decide on an execution (status
and words of every refusal), what a decision does to it, expiry, and a supersession that drops the approvals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from aiops_common.approvals import (
    DecisionError,
    apply_decision,
    approvals_needed,
    check_decision,
    expire,
    supersede,
)
from aiops_common.schemas import ApprovalDecision, ApprovalRecord, Decision, ExecutionRecord, ExecutionStatus

pytestmark = pytest.mark.unit

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
EXPIRES = NOW + timedelta(minutes=10)
APPROVE, REJECT, REQUEST = ApprovalDecision.APPROVE, ApprovalDecision.REJECT, ApprovalDecision.REQUEST


def _execution(
    status: ExecutionStatus = ExecutionStatus.PENDING_APPROVAL,
    *,
    required: int = 1,
    approved_by: tuple[str, ...] = (),
    expires_at: datetime | None = EXPIRES,
) -> ExecutionRecord:
    return ExecutionRecord(
        id="exe-1",
        incident_id="inc-1",
        attempt=1,
        runbook_id="restart",
        cause_service="checkout",
        requested_by="action",
        requested_at=NOW,
        updated_at=NOW,
        status=status,
        required_approvals=required,
        expires_at=expires_at,
        approvals=[Decision(by=who, decision="approve", at=NOW) for who in approved_by],
    )


def _decision(by: str, decision: ApprovalDecision = APPROVE, comment: str = "") -> ApprovalRecord:
    return ApprovalRecord(decision=decision, execution_id="exe-1", by=by, at=NOW, comment=comment, via="api")


# (execution, who, decision, when) -> (HTTP status, the refusal's exact words): what the gateway answers, the CLI
# prints and the worker writes to the audit log
REFUSALS = [
    pytest.param(
        _execution(ExecutionStatus.RUNNING),
        "alice",
        APPROVE,
        NOW,
        409,
        "execution exe-1 is running, not pending_approval: nothing to decide",
        id="approve-not-pending",
    ),
    pytest.param(
        _execution(ExecutionStatus.ROLLED_BACK),
        "alice",
        REJECT,
        NOW,
        409,
        "execution exe-1 is rolled_back, not pending_approval: nothing to decide",
        id="reject-not-pending",
    ),
    pytest.param(
        _execution(ExecutionStatus.SUPERSEDED),
        "alice",
        APPROVE,
        NOW,
        409,
        "execution exe-1 is superseded, not pending_approval: nothing to decide",
        id="approve-superseded",
    ),
    pytest.param(
        _execution(),
        "alice",
        APPROVE,
        EXPIRES,
        409,
        f"execution exe-1 expired at {EXPIRES.isoformat()}; request it again",
        id="approve-at-expiry",
    ),
    pytest.param(
        _execution(),
        "alice",
        REJECT,
        EXPIRES + timedelta(seconds=1),
        409,
        f"execution exe-1 expired at {EXPIRES.isoformat()}; request it again",
        id="reject-after-expiry",
    ),
    pytest.param(
        _execution(),
        "action",
        APPROVE,
        NOW,
        403,
        "action requested execution exe-1: a requester never approves its own request",
        id="approve-own-request",
    ),
    pytest.param(
        _execution(required=2, approved_by=("alice",)),
        "alice",
        APPROVE,
        NOW,
        409,
        "alice already approved execution exe-1; another approver must",
        id="approve-twice",
    ),
    pytest.param(_execution(), "alice", REQUEST, NOW, 400, "a request is not a decision on an execution", id="request"),
]


@pytest.mark.parametrize(("record", "who", "decision", "now", "status", "message"), REFUSALS)
def test_a_refused_decision_has_its_status_and_words(
    record: ExecutionRecord, who: str, decision: ApprovalDecision, now: datetime, status: int, message: str
) -> None:
    with pytest.raises(DecisionError) as checked:
        check_decision(record, who, decision, now)
    assert (checked.value.status, str(checked.value)) == (status, message)
    # the worker applies the same rules: the same refusal, and the record is left as it was
    with pytest.raises(DecisionError) as applied:
        apply_decision(record, _decision(who, decision, "why"), now)
    assert (applied.value.status, str(applied.value)) == (status, message)


ALLOWED = [
    pytest.param(_execution(), "alice", APPROVE, ExecutionStatus.APPROVED, 0, id="one-of-one"),
    pytest.param(_execution(required=2), "alice", APPROVE, ExecutionStatus.PENDING_APPROVAL, 1, id="one-of-two"),
    pytest.param(
        _execution(required=2, approved_by=("alice",)), "bob", APPROVE, ExecutionStatus.APPROVED, 0, id="two-of-two"
    ),
    pytest.param(_execution(), "action", REJECT, ExecutionStatus.REJECTED, 1, id="requester-withdraws"),
    pytest.param(
        _execution(required=2, approved_by=("alice",)),
        "alice",
        REJECT,
        ExecutionStatus.REJECTED,
        1,
        id="approver-rejects",
    ),
    pytest.param(
        _execution(expires_at=None), "alice", APPROVE, ExecutionStatus.APPROVED, 0, id="no-expiry-approved-by-hand"
    ),
]


@pytest.mark.parametrize(("record", "who", "decision", "status", "needed"), ALLOWED)
def test_an_allowed_decision_moves_the_execution_on(
    record: ExecutionRecord, who: str, decision: ApprovalDecision, status: ExecutionStatus, needed: int
) -> None:
    check_decision(record, who, decision, NOW - timedelta(seconds=1))
    after = apply_decision(record, _decision(who, decision, "fine"), NOW)
    assert after.status is status and after.updated_at == NOW
    assert after.approvals[-1].by == who and after.approvals[-1].decision == decision.value
    assert approvals_needed(record, decision is APPROVE) == needed
    assert after.finished_at == (NOW if status.terminal else None)
    if status is ExecutionStatus.PENDING_APPROVAL:
        assert after.history == record.history  # an approval counted, nothing decided yet
    else:
        assert (after.history[-1].status, after.history[-1].by) == (status.value, who)


def test_the_history_says_who_approved_or_rejected() -> None:
    once = apply_decision(_execution(required=2), _decision("alice"), NOW)
    twice = apply_decision(once, _decision("bob"), NOW)
    assert twice.history[-1].note == "approved by alice, bob" and twice.history[-1].by == "bob"
    rejected = apply_decision(_execution(), _decision("carol", REJECT, "wrong service"), NOW)
    assert rejected.history[-1].note == "rejected by carol: wrong service"


def test_expiry_only_past_the_time_of_a_waiting_execution() -> None:
    assert expire(_execution(), NOW) is None
    assert expire(_execution(ExecutionStatus.APPROVED), EXPIRES + timedelta(days=1)) is None
    assert expire(_execution(expires_at=None), EXPIRES + timedelta(days=1)) is None
    expired = expire(_execution(required=2, approved_by=("alice",)), EXPIRES)
    assert expired is not None and expired.status is ExecutionStatus.EXPIRED and expired.finished_at == EXPIRES
    assert expired.history[-1].note == "no decision within the approval time (1 of 2 approvals)"


def test_a_superseded_execution_says_the_approvals_given_do_not_carry_over() -> None:
    plain = supersede(_execution(), "superseded by the newer ranking", NOW, by="action", replaced_by="exe-2")
    assert plain.status is ExecutionStatus.SUPERSEDED and plain.superseded_by == "exe-2"
    assert plain.status.terminal and not plain.status.failed and plain.finished_at == NOW
    assert (plain.history[-1].by, plain.history[-1].note) == ("action", "superseded by the newer ranking")
    half = supersede(_execution(required=2, approved_by=("alice",)), "moved", NOW, by="action", replaced_by="exe-2")
    assert half.history[-1].note == "moved; 1 of 2 approvals given (alice) do not carry over: exe-2 needs its own"
    assert half.approvers() == ["alice"]  # kept on the superseded record, for the audit; never copied to exe-2
    with pytest.raises(DecisionError, match="approved, not pending_approval: it cannot be superseded"):
        supersede(_execution(ExecutionStatus.APPROVED), "moved", NOW, by="action", replaced_by="exe-2")
