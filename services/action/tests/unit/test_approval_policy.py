"""The approval policy: how many people, when the policy approves by itself, progressive automation earned and
revoked, decisions refused (the requester, the same person twice, too late, not pending), expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from aiops_action.policy import ApprovalPolicy, Trust, trust_of
from aiops_common.approvals import DecisionError, apply_decision, expire
from aiops_common.schemas import ApprovalDecision, ApprovalRecord, ExecutionRecord, ExecutionStatus

pytestmark = pytest.mark.unit

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def _policy(**changes: object) -> ApprovalPolicy:
    values: dict[str, object] = {
        "ttl_s": 600.0,
        "auto_risks": frozenset(),
        "progressive_after": 0,
        "high_blast_services": 3,
        "high_environments": frozenset(),
    }
    values.update(changes)
    return ApprovalPolicy(**values)  # type: ignore[arg-type]


def _execution(
    status: ExecutionStatus = ExecutionStatus.PENDING_APPROVAL,
    *,
    required: int = 1,
    auto: bool = False,
    n: int = 1,
    expires_at: datetime | None = NOW + timedelta(minutes=10),
) -> ExecutionRecord:
    return ExecutionRecord(
        id=f"exe-{n}",
        incident_id="inc-1",
        attempt=n,
        runbook_id="restart",
        cause_service="checkout",
        requested_by="action",
        requested_at=NOW,
        updated_at=NOW,
        status=status,
        required_approvals=required,
        auto_approved=auto,
        expires_at=expires_at,
    )


def _decision(by: str, decision: ApprovalDecision = ApprovalDecision.APPROVE, comment: str = "") -> ApprovalRecord:
    return ApprovalRecord(decision=decision, execution_id="exe-1", by=by, at=NOW, comment=comment, via="api")


def test_blast_radius_is_high_for_many_services_a_high_risk_or_a_protected_environment() -> None:
    policy = _policy(high_environments=frozenset({"production"}))
    small = policy.radius("medium", ["checkout"], ["checkout", "frontend"], pods=4, environment="staging")
    assert not small.high and small.services == ["checkout", "frontend"] and small.pods == 4
    assert small.describe() == "contained: 2 services (checkout, frontend), 4 pods in staging"
    many = policy.radius("medium", ["checkout"], ["checkout", "frontend", "mobile"])
    assert many.high and many.reasons == ["3 services touched (high from 3)"]
    assert policy.radius("high", ["checkout"], ["checkout"]).reasons == ["the runbook's risk is high"]
    assert policy.radius("low", ["checkout"], [], environment="Production").reasons == ["environment Production"]


def test_people_needed_one_two_or_none() -> None:
    policy = _policy(auto_risks=frozenset({"low"}))
    contained = policy.radius("low", ["a"], ["a"])
    high = policy.radius("high", ["a"], ["a"])
    assert policy.requirement("medium", contained, Trust(), dry_run_ok=True).approvals == 1
    assert policy.requirement("high", high, Trust(), dry_run_ok=True).approvals == 2
    auto = policy.requirement("low", contained, Trust(), dry_run_ok=True)
    assert auto.auto and "low risk" in auto.reason
    # never by itself when a dry run failed, nor with a high blast radius, whatever the risk
    assert policy.requirement("low", contained, Trust(), dry_run_ok=False).approvals == 1
    assert policy.requirement("low", policy.radius("low", ["a", "b", "c"], []), Trust(), dry_run_ok=True).approvals == 2


def test_progressive_automation_is_earned_by_approved_successes_and_revoked_by_a_failure() -> None:
    policy = _policy(progressive_after=3)
    contained = policy.radius("medium", ["a"], ["a"])
    ok = [_execution(ExecutionStatus.SUCCEEDED, n=i) for i in range(5, 2, -1)]
    assert trust_of(ok) == Trust(3)
    earned = policy.requirement("medium", contained, trust_of(ok), dry_run_ok=True)
    assert earned.auto and "3 successful approved executions in a row" in earned.reason
    # the newest one rolled back: trust is gone, whatever came before
    revoked = trust_of([_execution(ExecutionStatus.ROLLED_BACK, n=9), *ok])
    assert revoked == Trust(0, revoked_by="exe-9")
    need = policy.requirement("medium", contained, revoked, dry_run_ok=True)
    assert need.approvals == 1 and "revoked by the failure of exe-9" in need.reason
    # rejections and runs the policy approved by itself neither add nor take away; an interruption takes away
    mixed = [
        _execution(ExecutionStatus.SUCCEEDED, auto=True, n=8),
        _execution(ExecutionStatus.REJECTED, n=7),
        _execution(ExecutionStatus.SUCCEEDED, n=6),
        _execution(ExecutionStatus.INTERRUPTED, n=5),
        _execution(ExecutionStatus.SUCCEEDED, n=4),
    ]
    assert trust_of(mixed) == Trust(1, revoked_by="exe-5")
    # high blast radius is never automatic, trust or not
    assert policy.requirement("medium", policy.radius("high", ["a"], []), Trust(10), dry_run_ok=True).approvals == 2


def test_two_distinct_approvers_neither_the_requester() -> None:
    record = _execution(required=2)
    with pytest.raises(DecisionError) as own:
        apply_decision(record, _decision("action"), NOW)
    assert own.value.status == 403 and "never approves its own" in str(own.value)
    once = apply_decision(record, _decision("alice", comment="ok"), NOW)
    assert once.status is ExecutionStatus.PENDING_APPROVAL and once.approvers() == ["alice"]
    with pytest.raises(DecisionError) as twice:
        apply_decision(once, _decision("alice"), NOW)
    assert twice.value.status == 409
    done = apply_decision(once, _decision("bob"), NOW)
    assert done.status is ExecutionStatus.APPROVED and done.approvers() == ["alice", "bob"]
    assert done.history[-1].note == "approved by alice, bob"
    with pytest.raises(DecisionError, match="not pending_approval"):
        apply_decision(done, _decision("carol"), NOW)


def test_a_rejection_ends_it_and_a_late_decision_is_refused() -> None:
    rejected = apply_decision(_execution(), _decision("alice", ApprovalDecision.REJECT, "wrong service"), NOW)
    assert rejected.status is ExecutionStatus.REJECTED and rejected.finished_at == NOW
    assert rejected.history[-1].note == "rejected by alice: wrong service"
    late = _execution(expires_at=NOW - timedelta(seconds=1))
    with pytest.raises(DecisionError, match="expired"):
        apply_decision(late, _decision("alice"), NOW)


def test_expiry_after_the_ttl_only() -> None:
    pending = _execution(required=2)
    assert expire(pending, NOW) is None
    expired = expire(pending, NOW + timedelta(minutes=10))
    assert expired is not None and expired.status is ExecutionStatus.EXPIRED
    assert expired.status.failed is False and expired.status.terminal
    assert "0 of 2 approvals" in expired.history[-1].note
    assert expire(_execution(ExecutionStatus.APPROVED), NOW + timedelta(days=1)) is None
