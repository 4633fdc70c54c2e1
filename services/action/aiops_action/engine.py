"""What the matcher and the orchestrator do with what they take: an RCA result becomes a proposed execution of
the runbook that fits its best cause (a newer ranking that fits another runbook or target supersedes the matcher's
proposal still waiting for approval, ``reranking.py``); a person's request becomes one too; an approval or rejection
moves one on.

Restart-safe by construction: an execution's id is its incident, runbook and attempt, and it is created only if
that id is new, so a result or a request taken again proposes nothing twice; a decision or a supersession is
applied to the version read, and one taken again is refused by the rules (already approved, not pending any more).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from aiops_common.approvals import DecisionError, apply_decision, supersede
from aiops_common.documents import DocumentStore, VersionConflictError
from aiops_common.schemas import (
    ApprovalDecision,
    ApprovalRecord,
    ExecutionRecord,
    ExecutionStatus,
    IncidentRecord,
    IncidentStatus,
    RankedCause,
    RcaResult,
    RcaStatus,
)
from aiops_common.topology import TopologyStore
from prometheus_client import Counter

from aiops_action.executions import ExecutionBook
from aiops_action.executors import Executors
from aiops_action.outputs import ACTOR
from aiops_action.policy import ApprovalPolicy, trust_of
from aiops_action.proposals import Proposal, propose
from aiops_action.reranking import Hold, follow_ranking
from aiops_action.runbooks.matching import match_cause, match_runbooks
from aiops_action.runbooks.model import Runbook
from aiops_action.settings import ActionSettings

__all__ = ["ActionEngine", "Refusal"]

log = structlog.get_logger(__name__)

PROPOSALS = Counter(
    "aiops_action_proposals_total", "Executions proposed, by status (pending, approved, refused)", ["status"]
)
NOT_PROPOSED = Counter(
    "aiops_action_not_proposed_total",
    "RCA results and requests that proposed nothing, by reason",
    ["reason"],
)
DECISIONS = Counter(
    "aiops_action_decisions_total", "Decisions taken from approvals, by decision and result", ["decision", "result"]
)

INCIDENT_WAITS_S: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0)
"""An RCA result can arrive before its incident's document is readable (Elasticsearch's refresh): wait this."""


_DONE = {
    ApprovalDecision.APPROVE: "approved",
    ApprovalDecision.REJECT: "rejected",
    ApprovalDecision.REQUEST: "requested",
}


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: str
    message: str


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ActionEngine:
    def __init__(
        self,
        settings: ActionSettings,
        runbooks: Sequence[Runbook],
        policy: ApprovalPolicy,
        executors: Executors,
        topology: TopologyStore | None,
        documents: DocumentStore,
        book: ExecutionBook,
        *,
        clock: Callable[[], datetime] = _utcnow,
        incident_waits_s: Sequence[float] = INCIDENT_WAITS_S,
    ) -> None:
        self.settings = settings
        self.runbooks = {r.id: r for r in runbooks}
        self.policy = policy
        self.executors = executors
        self.topology = topology
        self.documents = documents
        self.book = book
        self.clock = clock
        self.incident_waits_s = incident_waits_s

    # -- reading ------------------------------------------------------------------------------------------------

    async def incident(self, incident_id: str, *, wait: bool = False) -> IncidentRecord | None:
        for delay in (*(self.incident_waits_s if wait else ()), None):
            doc = await self.documents.get("incidents", incident_id)
            if doc is not None:
                if doc.body.get("merged_into"):
                    return None
                return IncidentRecord.from_document(doc.body)
            if delay is not None:
                await asyncio.sleep(delay)
        return None

    async def latest_rca(self, incident_id: str) -> RcaResult | None:
        doc = await self.documents.get("incidents", incident_id)
        summary = doc.body.get("rca") if doc is not None else None
        if isinstance(summary, dict) and isinstance(summary.get("id"), str):
            result = await self.documents.get("rca_results", summary["id"])
            if result is not None:
                return RcaResult.from_document(result.body)
        return None

    # -- proposing ----------------------------------------------------------------------------------------------

    async def _build(self, proposal: Proposal) -> ExecutionRecord:
        history = await self.book.history(proposal.runbook.id, proposal.cause.service)
        return await propose(
            proposal,
            policy=self.policy,
            executors=self.executors,
            topology=self.topology,
            trust=trust_of(history),
            hops=self.settings.action_blast_hops,
            now=self.clock(),
        )

    async def _propose(self, proposal: Proposal) -> ExecutionRecord | Refusal:
        return await self._record(await self._build(proposal))

    async def _record(self, record: ExecutionRecord) -> ExecutionRecord | Refusal:
        if await self.book.create(record) is None:
            NOT_PROPOSED.labels("proposed_already").inc()
            return Refusal("proposed_already", f"execution {record.id} exists already")
        PROPOSALS.labels(record.status.value).inc()
        if record.status is ExecutionStatus.REFUSED:
            await self.book.audit(record, "execution.refused", record.error, by=record.requested_by)
            return record
        await self.book.audit(
            record,
            "execution.requested",
            f"{record.runbook_id} proposed for {record.cause_service or 'the incident'}: {record.policy}",
            {
                "parameters": record.parameters,
                "blast_radius": record.blast_radius.model_dump(mode="json"),
                "required_approvals": record.required_approvals,
                "note": record.note,
                **({"replaces": record.replaces} if record.replaces else {}),
            },
            by=record.requested_by,
        )
        await self.book.audit(
            record,
            "execution.dry_run",
            "; ".join(f"{s.name}: {s.summary}" for s in record.dry_run),
            {
                "steps": [
                    s.model_dump(mode="json", include={"name", "state", "summary", "output"}) for s in record.dry_run
                ]
            },
        )
        if record.auto_approved:
            await self.book.audit(record, "execution.approved", record.policy, by="policy")
        return record

    async def _supersede(self, old: ExecutionRecord, new: ExecutionRecord, result: RcaResult) -> bool:
        """End the matcher's waiting proposal ``old`` in favour of ``new``; False when it moved on meanwhile (a
        decision, expiry, another worker): the caller decides again on what is there now."""
        found = await self.book.get(old.id)
        if found is None or found[0].status is not ExecutionStatus.PENDING_APPROVAL:
            return False
        record, version = found
        top = result.causes[0].service if result.causes else "?"
        reason = (
            f"superseded by the newer ranking ({result.id}, revision {result.incident_revision}, {top} first):"
            f" {new.runbook_id} on {new.cause_service} proposed instead as {new.id}"
        )
        updated = supersede(record, reason, self.clock(), by=ACTOR, replaced_by=new.id)
        try:
            await self.book.save(updated, version)
        except VersionConflictError:
            return False
        PROPOSALS.labels(ExecutionStatus.SUPERSEDED.value).inc()
        await self.book.audit(
            updated,
            "execution.superseded",
            updated.history[-1].note,
            {
                "superseded_by": new.id,
                "rca_id": result.id,
                "rca_revision": result.incident_revision,
                "approvals_dropped": record.approvers(),
            },
            by=ACTOR,
        )
        return True

    async def on_rca(self, result: RcaResult) -> ExecutionRecord | Refusal:
        """Propose the runbook that fits the best-ranked cause it can, once per incident and runbook; a ranking of a
        newer revision whose best match is another runbook or target supersedes the matcher's proposal still waiting
        for approval (``reranking.follow_ranking``)."""
        if result.status is RcaStatus.NO_ANOMALY or not result.causes:
            return self._not("no_cause", f"{result.id} ranks no cause")
        incident = await self.incident(result.incident_id, wait=True)
        if incident is None:
            return self._not("no_incident", f"incident {result.incident_id} is not in the document store (or merged)")
        if incident.status is IncidentStatus.RESOLVED:
            return self._not("resolved", f"incident {incident.id} is resolved")
        matches = match_runbooks(self.runbooks.values(), result, incident, top=self.settings.action_match_top)
        if not matches:
            return self._not("no_runbook", f"no runbook fits the top causes of {incident.id}")
        best = matches[0]
        for _ in range(10):
            existing = await self.book.of_incident(incident.id)
            verdict = follow_ranking(
                existing, incident.id, best.runbook.id, best.cause.service, result.incident_revision, matcher=ACTOR
            )
            if isinstance(verdict, Hold):
                return self._not(verdict.reason, verdict.message)
            replaced = verdict.supersedes
            note = ""
            if replaced:
                names = ", ".join(f"{e.id} ({e.runbook_id} on {e.cause_service})" for e in replaced)
                note = (
                    f"proposed instead of {names}: the newer ranking (revision {result.incident_revision})"
                    " moved the cause"
                )
            record = await self._build(
                Proposal(
                    best.runbook,
                    best.cause,
                    best.rank,
                    incident,
                    attempt=verdict.attempt,
                    requested_by=ACTOR,
                    note=note,
                    rca_id=result.id,
                    rca_revision=result.incident_revision,
                    replaces=replaced[0].id if replaced else "",
                )
            )
            if record.status is ExecutionStatus.REFUSED and replaced:
                # the newer cause's runbook cannot run here: the waiting proposal stays, the refusal is recorded
                record = record.model_copy(update={"note": "", "replaces": ""})
            else:
                superseded = [await self._supersede(old, record, result) for old in replaced]
                if not all(superseded):
                    continue  # one moved on meanwhile: decide again on what is there now
            return await self._record(record)
        return self._not("busy", f"the executions of incident {incident.id} kept changing; nothing proposed")

    def _not(self, reason: str, message: str) -> Refusal:
        NOT_PROPOSED.labels(reason).inc()
        log.info("nothing proposed", reason=reason, detail=message)
        return Refusal(reason, message)

    # -- people's decisions -------------------------------------------------------------------------------------

    async def on_decision(self, decision: ApprovalRecord) -> ExecutionRecord | Refusal:
        if decision.decision is ApprovalDecision.REQUEST:
            outcome = await self._request(decision)
        else:
            outcome = await self._decide(decision)
        DECISIONS.labels(decision.decision.value, "refused" if isinstance(outcome, Refusal) else "applied").inc()
        if isinstance(outcome, Refusal):
            await self._audit_refusal(decision, outcome)
        return outcome

    async def _audit_refusal(self, decision: ApprovalRecord, refusal: Refusal) -> None:
        try:
            await self.book.audit_log.append(
                decision.by,
                f"{decision.decision.value}.refused",
                decision.execution_id or decision.incident_id,
                refusal.message,
                details={"reason": refusal.reason, "via": decision.via, "request_id": decision.request_id},
            )
        except Exception as exc:
            log.error("audit entry not written", error=repr(exc))

    def _cause_for(self, runbook: Runbook, rca: RcaResult | None, incident: IncidentRecord) -> tuple[RankedCause, int]:
        causes = rca.causes[: self.settings.action_match_top] if rca is not None else []
        for rank, cause in enumerate(causes):
            if match_cause(runbook, cause, incident):
                return cause, rank
        if causes:
            return causes[0], 0
        lead = next((m.service for m in incident.members if m.lead and m.service), "")
        service = lead or (incident.services[0] if incident.services else "")
        return RankedCause(service=service, probability=0.0), 0

    async def _request(self, decision: ApprovalRecord) -> ExecutionRecord | Refusal:
        runbook = self.runbooks.get(decision.runbook_id)
        if runbook is None:
            return Refusal("unknown_runbook", f"no runbook {decision.runbook_id!r} is loaded")
        incident = await self.incident(decision.incident_id)
        if incident is None:
            return Refusal("unknown_incident", f"no incident {decision.incident_id!r}")
        if incident.status is IncidentStatus.RESOLVED:
            return Refusal("resolved", f"incident {incident.id} is resolved")
        existing = [e for e in await self.book.of_incident(incident.id) if e.runbook_id == runbook.id]
        if any(not e.status.terminal for e in existing):
            return Refusal("execution_active", f"{runbook.id} is going for {incident.id} already")
        cause, rank = self._cause_for(runbook, await self.latest_rca(incident.id), incident)
        attempt = max((e.attempt for e in existing), default=0) + 1
        return await self._propose(
            Proposal(
                runbook,
                cause,
                rank,
                incident,
                attempt=attempt,
                requested_by=decision.by,
                note=decision.comment,
                overrides=dict(decision.parameters),
            )
        )

    async def _decide(self, decision: ApprovalRecord) -> ExecutionRecord | Refusal:
        for _ in range(10):
            found = await self.book.get(decision.execution_id)
            if found is None:
                return Refusal("unknown_execution", f"no execution {decision.execution_id!r}")
            record, version = found
            try:
                updated = apply_decision(record, decision, self.clock())
            except DecisionError as exc:
                return Refusal(f"refused_{exc.status}", str(exc))
            try:
                await self.book.save(updated, version)
            except VersionConflictError:
                continue  # moved on meanwhile (another decision, expiry): decide on what is there now
            given = len(updated.approvers())
            message = (
                f"{_DONE[decision.decision]} by {decision.by}"
                + (f": {decision.comment}" if decision.comment else "")
                + f" ({given} of {updated.required_approvals} approvals; now {updated.status.value})"
            )
            await self.book.audit(
                updated,
                f"execution.{decision.decision.value}",
                message,
                {"role": decision.role, "via": decision.via, "request_id": decision.request_id},
                by=decision.by,
            )
            return updated
        return Refusal("busy", f"execution {decision.execution_id} kept changing; the decision was not applied")
