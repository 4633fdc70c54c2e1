"""A proposed execution: a runbook matched to a cause (or asked for by a person), its parameters resolved and
checked, its blast radius from the topology store, each step's dry run, and what the approval policy requires."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from aiops_common.schemas import (
    ExecutionRecord,
    ExecutionStatus,
    IncidentRecord,
    RankedCause,
    StepRecord,
    StepState,
    Transition,
    VerificationRecord,
    execution_id,
)
from aiops_common.topology import TopologyStore

from aiops_action.executors import Executors
from aiops_action.executors._protocol import Step, StepResult
from aiops_action.policy import ApprovalPolicy, Trust
from aiops_action.runbooks.model import Runbook
from aiops_action.runbooks.parameters import ParameterError, ResolutionContext, ResolvedRunbook, resolve

__all__ = ["Proposal", "Reach", "dry_runs", "propose", "reach_of", "step_record", "targets_of"]

log = structlog.get_logger(__name__)

DRY_RUN_TIMEOUT_S = 30.0
TOPOLOGY_TIMEOUT_S = 5.0
_ENV_KEYS = ("env", "environment")


@dataclass(frozen=True, slots=True)
class Proposal:
    """What is proposed, and who asks: the matcher (``action``) or a person."""

    runbook: Runbook
    cause: RankedCause
    cause_rank: int
    incident: IncidentRecord
    attempt: int
    requested_by: str
    note: str = ""
    overrides: Mapping[str, object] | None = None
    rca_id: str = ""
    """The RCA result the matcher proposes it from, and that result's incident revision."""
    rca_revision: int = 0
    replaces: str = ""
    """The matcher's proposal this one supersedes (a newer ranking moved the cause)."""


@dataclass(frozen=True, slots=True)
class Reach:
    """What the topology store says of the services an execution changes."""

    services: tuple[str, ...]
    pods: int | None = None
    environment: str = ""
    missing: str = ""


def step_record(step: Step, result: StepResult | None = None) -> StepRecord:
    record = StepRecord(
        name=step.name, kind=step.kind, action=step.action, arguments=dict(step.arguments), timeout_s=step.timeout_s
    )
    if result is None:
        return record
    return record.model_copy(
        update={
            "state": StepState.OK if result.ok else StepState.FAILED,
            "summary": result.summary,
            "output": result.output,
            "details": dict(result.details),
        }
    )


def targets_of(resolved: ResolvedRunbook, cause_service: str) -> list[str]:
    """The services the steps change: the cause's, and every Deployment a Kubernetes step names."""
    found = [cause_service] if cause_service else []
    for step in resolved.steps:
        deployment = step.arguments.get("deployment") if step.kind == "kubernetes" else None
        if isinstance(deployment, str):
            found.append(deployment)
    return sorted(set(found))


def _environment(cause: RankedCause, incident: IncidentRecord) -> str:
    for labels in ResolutionContext(cause, incident).member_labels():
        for key in _ENV_KEYS:
            if labels.get(key):
                return labels[key]
    return ""


async def reach_of(topology: TopologyStore | None, targets: Sequence[str], hops: int) -> Reach:
    """The targets and their callers within ``hops``, their pods (topology attributes ``replicas``/``pods``) and
    environment; the targets alone, saying why, when the topology cannot be read."""
    if topology is None:
        return Reach(tuple(targets), missing="no topology store")
    try:
        async with asyncio.timeout(TOPOLOGY_TIMEOUT_S):
            hood = await topology.neighbourhood(targets, hops, direction="upstream") if hops else None
            names = sorted(hood.names() | set(targets)) if hood else sorted(targets)
            services = [await topology.service(name) for name in names]
    except Exception as exc:
        return Reach(tuple(targets), missing=f"topology: {type(exc).__name__}: {exc}")
    pods: int | None = None
    environment = ""
    for service in services:
        if service is None:
            continue
        count = service.attributes.get("replicas", service.attributes.get("pods"))
        if isinstance(count, int | float) and not isinstance(count, bool):
            pods = (pods or 0) + int(count)
        if not environment and service.name in targets:
            env = next((service.attributes.get(k) for k in _ENV_KEYS if service.attributes.get(k)), "")
            environment = str(env or "")
    return Reach(tuple(names), pods=pods, environment=environment)


async def dry_runs(executors: Executors, steps: Sequence[Step]) -> list[StepRecord]:
    """Each step's dry run; one that fails to answer in time, or raises, is a failed dry run saying so."""
    records = []
    for step in steps:
        try:
            async with asyncio.timeout(min(step.timeout_s, DRY_RUN_TIMEOUT_S)):
                result = await executors.dry_run(step)
        except TimeoutError:
            result = StepResult(step.name, ok=False, dry_run=True, summary="the dry run did not answer in time")
        except Exception as exc:  # an executor's bug must not stop the proposal: the approver sees it
            log.exception("dry run failed", step=step.name)
            result = StepResult(step.name, ok=False, dry_run=True, summary=f"dry run error: {type(exc).__name__}")
        records.append(step_record(step, result))
    return records


async def propose(
    proposal: Proposal,
    *,
    policy: ApprovalPolicy,
    executors: Executors,
    topology: TopologyStore | None,
    trust: Trust,
    hops: int,
    now: datetime,
) -> ExecutionRecord:
    """The execution record of a proposal: pending approval, approved by the policy, or refused (with the error)
    when the runbook cannot be resolved for this incident; nothing has run."""
    runbook, cause, incident = proposal.runbook, proposal.cause, proposal.incident
    base: dict[str, Any] = {
        "id": execution_id(incident.id, runbook.id, proposal.attempt),
        "incident_id": incident.id,
        "attempt": proposal.attempt,
        "runbook_id": runbook.id,
        "runbook_version": runbook.version,
        "title": runbook.title,
        "risk": runbook.risk.value,
        "cause_service": cause.service,
        "cause_kind": cause.kind.value,
        "cause_rank": proposal.cause_rank,
        "rca_id": proposal.rca_id,
        "rca_revision": proposal.rca_revision,
        "replaces": proposal.replaces,
        "requested_by": proposal.requested_by,
        "requested_at": now,
        "updated_at": now,
        "note": proposal.note,
    }
    try:
        resolved = resolve(runbook, ResolutionContext(cause, incident), proposal.overrides)
    except ParameterError as exc:
        note = f"not run: {exc}"
        return ExecutionRecord(
            **base,
            services=[cause.service] if cause.service else [],
            status=ExecutionStatus.REFUSED,
            error=str(exc),
            finished_at=now,
            history=[Transition(at=now, status=ExecutionStatus.REFUSED.value, by="policy", note=note)],
        )
    targets = targets_of(resolved, cause.service)
    reach = await reach_of(topology, targets, hops)
    environment = reach.environment or _environment(cause, incident)
    radius = policy.radius(
        runbook.risk.value, targets, reach.services, pods=reach.pods, environment=environment, missing=reach.missing
    )
    tried = await dry_runs(executors, resolved.steps)
    need = policy.requirement(runbook.risk.value, radius, trust, dry_run_ok=all(s.state is StepState.OK for s in tried))
    status = ExecutionStatus.APPROVED if need.auto else ExecutionStatus.PENDING_APPROVAL
    v = resolved.verify
    return ExecutionRecord(
        **base,
        services=radius.services,
        parameters=dict(resolved.parameters),
        parameter_sources=dict(resolved.sources),
        blast_radius=radius,
        required_approvals=need.approvals,
        auto_approved=need.auto,
        policy=need.reason,
        expires_at=None if need.auto else policy.expires_at(now),
        status=status,
        steps=[step_record(s) for s in resolved.steps],
        rollback=[step_record(s) for s in resolved.rollback],
        dry_run=tried,
        verification=VerificationRecord(
            series=v.series, match=dict(v.match), lower=v.lower, upper=v.upper, within_s=v.within_s, for_s=v.for_s
        ),
        history=[
            Transition(
                at=now, status=ExecutionStatus.PENDING_APPROVAL.value, by=proposal.requested_by, note="proposed"
            ),
            *([Transition(at=now, status=status.value, by="policy", note=need.reason)] if need.auto else []),
        ],
    )
