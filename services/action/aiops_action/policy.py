"""The approval policy: the blast radius, how many people an execution needs and whether the policy approves it by
itself (progressive automation included). Pure. What a person's decision does to an execution is in
``aiops_common.approvals``, shared with the gateway and the CLI."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from aiops_common.schemas import BlastRadius, ExecutionRecord, ExecutionStatus

from aiops_action.settings import ActionSettings

__all__ = ["ApprovalPolicy", "Requirement", "Trust", "trust_of"]


@dataclass(frozen=True, slots=True)
class Trust:
    """Progressive automation's memory of one runbook on one service: successful person-approved executions in a
    row, newest first, since the last failure (a failure revokes what was earned)."""

    successes: int = 0
    revoked_by: str = ""
    """The execution whose failure ended the last run of successes, if any."""


def trust_of(history: Iterable[ExecutionRecord]) -> Trust:
    """``history``: the runbook's executions for one service, newest first. Executions still going, rejected,
    expired or refused say nothing about whether the runbook works; ones the policy approved by itself neither
    add nor take away trust unless they failed."""
    successes = 0
    for record in history:
        if record.status.failed:
            return Trust(successes, revoked_by=record.id)
        if record.status is ExecutionStatus.SUCCEEDED and not record.auto_approved:
            successes += 1
    return Trust(successes)


@dataclass(frozen=True, slots=True)
class Requirement:
    approvals: int
    """Distinct people needed (0: approved by the policy)."""
    reason: str

    @property
    def auto(self) -> bool:
        return self.approvals == 0


@dataclass(frozen=True, slots=True)
class ApprovalPolicy:
    ttl_s: float
    auto_risks: frozenset[str]
    progressive_after: int
    high_blast_services: int
    high_environments: frozenset[str]

    @classmethod
    def from_settings(cls, settings: ActionSettings) -> ApprovalPolicy:
        return cls(
            ttl_s=settings.action_approval_ttl_s,
            auto_risks=frozenset(settings.action_auto_approve_risks),
            progressive_after=settings.action_progressive_after,
            high_blast_services=settings.action_high_blast_services,
            high_environments=frozenset(e.lower() for e in settings.action_high_blast_environments),
        )

    def radius(
        self,
        risk: str,
        targets: Sequence[str],
        services: Sequence[str],
        *,
        pods: int | None = None,
        environment: str = "",
        missing: str = "",
    ) -> BlastRadius:
        """The blast radius of changing ``targets`` (``services``: they and their callers), and whether it is high."""
        everything = sorted({*targets, *services})
        reasons: list[str] = []
        if risk == "high":
            reasons.append("the runbook's risk is high")
        if len(everything) >= self.high_blast_services:
            reasons.append(f"{len(everything)} services touched (high from {self.high_blast_services})")
        if environment and environment.lower() in self.high_environments:
            reasons.append(f"environment {environment}")
        return BlastRadius(
            services=everything,
            targets=sorted(set(targets)),
            pods=pods,
            environment=environment,
            high=bool(reasons),
            reasons=reasons,
            missing=missing,
        )

    def requirement(self, risk: str, radius: BlastRadius, trust: Trust, *, dry_run_ok: bool) -> Requirement:
        """Two people for a high blast radius, else one, unless the policy may approve it by itself: a risk it
        allows, or progressive automation earned; never with a high blast radius or a dry run that failed."""
        if radius.high:
            return Requirement(2, "two distinct approvers: high blast radius (" + "; ".join(radius.reasons) + ")")
        people = Requirement(1, "one approver")
        if not dry_run_ok:
            return Requirement(1, "one approver: a step's dry run failed, so the policy does not approve it")
        if risk in self.auto_risks:
            return Requirement(0, f"approved by the policy: {risk} risk is approved automatically")
        if self.progressive_after and trust.successes >= self.progressive_after:
            return Requirement(
                0,
                f"approved by the policy: {trust.successes} successful approved executions in a row"
                f" (automatic from {self.progressive_after})",
            )
        if self.progressive_after:
            earned = f"{trust.successes} of {self.progressive_after} successful approved executions in a row"
            revoked = (
                f"; revoked by the failure of {trust.revoked_by}" if trust.revoked_by and not trust.successes else ""
            )
            return Requirement(1, f"one approver ({earned} for automatic approval{revoked})")
        return people

    def expires_at(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.ttl_s)
