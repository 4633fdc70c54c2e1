"""Following the newest RCA ranking of an incident: whether the matcher proposes the runbook that fits its best cause,
and which of its own proposals still waiting for approval that proposal supersedes. Pure: the incident's
executions come in, the verdict goes out.

RCA re-ranks an incident as evidence arrives, and its first ranking sometimes names a neighbour of the real cause.
A newer ranking (a higher incident revision) whose best match is another runbook, or the same runbook on another
service, supersedes the matcher's proposal still waiting for approval; nothing that a person asked for, approved,
or that runs is ever superseded, and a ranking of the same or an older revision (a replay) changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aiops_common.schemas import ExecutionRecord, ExecutionStatus

__all__ = ["Hold", "NextProposal", "follow_ranking"]


@dataclass(frozen=True, slots=True)
class NextProposal:
    """Propose the runbook at ``attempt``, after superseding ``supersedes`` (the matcher's waiting proposals)."""

    attempt: int
    supersedes: tuple[ExecutionRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class Hold:
    """Propose nothing: ``reason`` is the label of ``aiops_action_not_proposed_total``."""

    reason: str
    message: str


def follow_ranking(
    existing: Sequence[ExecutionRecord],
    incident_id: str,
    runbook_id: str,
    service: str,
    revision: int,
    *,
    matcher: str,
) -> NextProposal | Hold:
    """What the matcher does with the ranking of ``revision`` whose best match is ``runbook_id`` on ``service``,
    given the incident's executions (``existing``) and the name its own proposals are requested by (``matcher``)."""
    going = [e for e in existing if not e.status.terminal]
    decided = [e for e in going if e.status is not ExecutionStatus.PENDING_APPROVAL]
    if decided:
        e = decided[0]
        return Hold("execution_active", f"incident {incident_id} has an execution going already ({e.id} {e.status})")
    asked = [e for e in going if e.requested_by != matcher]
    if asked:
        e = asked[0]
        return Hold(
            "execution_active", f"incident {incident_id} has {e.id} requested by {e.requested_by} waiting for approval"
        )
    same = [e for e in going if e.runbook_id == runbook_id and e.cause_service == service]
    if same:
        return Hold(
            "proposed_already", f"{runbook_id} on {service} waits for approval for {incident_id} already ({same[0].id})"
        )
    newest = max((e.rca_revision for e in going), default=0)
    if going and revision <= newest:
        return Hold(
            "older_ranking",
            f"the ranking of revision {revision} of {incident_id} is not newer than that of revision {newest}, which"
            f" {', '.join(e.id for e in going)} was proposed from",
        )
    # once per incident and runbook, as before the ranking moved: a rejected, expired, refused or finished
    # execution of this runbook stands; only the superseded ones (never decided on) and those superseded now don't
    waiting = {e.id for e in going}
    before = [
        e
        for e in existing
        if e.runbook_id == runbook_id and e.status is not ExecutionStatus.SUPERSEDED and e.id not in waiting
    ]
    if before:
        return Hold("proposed_already", f"{runbook_id} was proposed for {incident_id} already ({before[0].id})")
    attempt = max((e.attempt for e in existing if e.runbook_id == runbook_id), default=0) + 1
    return NextProposal(attempt, tuple(going))
