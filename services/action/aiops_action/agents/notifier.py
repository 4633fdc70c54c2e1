"""Agents: ``incidents``, ``rca.results`` and ``actions`` -> Slack and webhook notifications, and escalations.

- An incident seen for the first time is announced (summary, root cause and evidence when an analysis is known);
  a severity change gets its own message; a change of status or services is an update (grouped by
  :class:`~aiops_action.notify.dispatch.Notifications`), and the status is what stops escalation (acknowledged,
  mitigated) or ends it (resolved). A later analysis with another top cause is an update too.
- An execution waiting for approval asks for it (runbook, risk, blast radius, the dry run, a link to the incident
  page, where approve and reject are); a finished one says how it ended; a failed, rolled-back or interrupted one,
  or an approval that expired, escalates at once.

Delivery is at-least-once: an execution state seen again (a restart before its offset was committed) is not
sent again while this process remembers it (the last ``MAX_REMEMBERED`` states). What is remembered of incidents
and analyses is bounded the same way; an incident this process has not seen is read from the document store.
A record that does not decode is counted as dropped, never a stop.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import faust
import structlog
from aiops_common.agent_loop import AgentMeter, install_agent
from aiops_common.documents import DocumentStore
from aiops_common.schemas import (
    ExecutionRecord,
    ExecutionStatus,
    IncidentRecord,
    IncidentSeverity,
    IncidentStatus,
    RcaResult,
)
from aiops_common.topics import Topics, declare
from prometheus_client import Counter

from aiops_action.notify.dispatch import Notifications
from aiops_action.notify.llm import LlmEndpoint, enrich_summary
from aiops_action.notify.messages import (
    EventKind,
    Notification,
    approval_request,
    execution_result,
    new_incident,
    severity_changed,
)
from aiops_action.notify.summary import incident_summary
from aiops_action.settings import ActionSettings

__all__ = ["MAX_REMEMBERED", "PUBLISHED", "Notifier", "install"]

log = structlog.get_logger(__name__)

PUBLISHED = Counter(
    "aiops_notify_published_total",
    "Notifications the notifier handed to the channels, by kind (incident, severity, approval, execution, "
    "escalation); what each channel made of them is aiops_notify_deliveries_total",
    ["kind"],
)

MAX_REMEMBERED = 10_000
"""Incidents, analyses and execution states remembered (the oldest are forgotten first)."""

_RESULTS: dict[ExecutionStatus, str] = {
    ExecutionStatus.SUCCEEDED: "succeeded",
    ExecutionStatus.ROLLED_BACK: "rolled back",
    ExecutionStatus.ROLLBACK_FAILED: "failed, and so did its rollback",
    ExecutionStatus.FAILED: "failed",
    ExecutionStatus.INTERRUPTED: "was interrupted",
    ExecutionStatus.REJECTED: "was rejected",
    ExecutionStatus.EXPIRED: "expired unapproved",
    ExecutionStatus.SUPERSEDED: "was superseded by a newer ranking",
}
"""Execution outcomes that are announced, as the message says them (a superseded proposal does not escalate: the
one proposed instead asks for approval)."""

_ESCALATES = frozenset(
    {
        ExecutionStatus.ROLLED_BACK,
        ExecutionStatus.ROLLBACK_FAILED,
        ExecutionStatus.FAILED,
        ExecutionStatus.INTERRUPTED,
        ExecutionStatus.EXPIRED,
    }
)

K = TypeVar("K")
V = TypeVar("V")


class _Recent(Generic[K, V]):
    """A dict that forgets its least recently written entries beyond ``size``: memory stays bounded in a storm."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        return self._items.get(key)

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def pop(self, key: K) -> None:
        self._items.pop(key, None)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)


def _steps_text(record: ExecutionRecord) -> str:
    lines = [f"- {s.name}: {' '.join((s.summary or s.action).split())}" for s in record.dry_run[:20]]
    if len(record.dry_run) > 20:
        lines.append(f"- and {len(record.dry_run) - 20} more steps")
    return "\n".join(lines)


def _approval_text(record: ExecutionRecord) -> str:
    needed = record.required_approvals - len(record.approvers())
    parts = [f"Needs {needed} more approval{'s' * (needed != 1)}" + (f" ({record.policy})" if record.policy else "")]
    if record.expires_at is not None:
        parts[0] += f"; expires {record.expires_at.isoformat()}"
    if record.note:
        parts.append(f"Note from {record.requested_by}: {record.note}")
    steps = _steps_text(record)
    parts.append(f"Dry run:\n{steps}" if steps else "Dry run: no steps")
    return "\n".join(parts)


def _result_text(record: ExecutionRecord) -> str:
    parts = []
    if record.error:
        parts.append(f"Error: {record.error}")
    if record.verification is not None and record.verification.detail:
        parts.append(f"Verification: {record.verification.detail}")
    failed = [s for s in record.steps if s.state.value in ("failed", "unknown")]
    parts.extend(f"Step {s.name} {s.state.value}: {s.summary}" for s in failed[:5])
    ran = [s for s in record.rollback if s.state.value != "pending"]
    parts.extend(f"Rollback {s.name} {s.state.value}: {s.summary}" for s in ran[:5])
    if record.status is ExecutionStatus.REJECTED:
        parts.extend(f"Rejected by {d.by}: {d.comment}" for d in record.approvals if d.decision == "reject")
    if record.status is ExecutionStatus.SUPERSEDED and record.history:
        parts.append(f"{record.history[-1].note[:1].upper()}{record.history[-1].note[1:]}")
    return "\n".join(parts)


class Notifier:
    """What the agents remember between records, and how each record becomes notifications."""

    def __init__(
        self,
        settings: ActionSettings,
        notifications: Notifications,
        documents: DocumentStore | None,
        *,
        remembered: int = MAX_REMEMBERED,
    ) -> None:
        self.settings = settings
        self.notifications = notifications
        self.documents = documents
        self.llm = LlmEndpoint.from_settings(settings)
        self.incidents: _Recent[str, IncidentRecord] = _Recent(remembered)
        """Incident id -> the newest revision seen."""
        self.analyses: _Recent[str, RcaResult] = _Recent(remembered)
        """Incident id -> the newest analysis seen."""
        self.proposed: _Recent[str, str] = _Recent(remembered)
        """Incident id -> the runbook last proposed for it (the "proposed action")."""
        self.sent: _Recent[tuple[str, str], None] = _Recent(remembered)
        """(execution id, status) pairs already announced."""

    @property
    def ui_url(self) -> str:
        return self.settings.action_ui_url

    def _publish(self, n: Notification) -> None:
        self.notifications.publish(n)
        PUBLISHED.labels(n.kind.value).inc()

    # -- incidents and their analyses ----------------------------------------------------------------------------

    async def _stored_analysis(self, incident_id: str) -> RcaResult | None:
        """The analysis the incident's document names (``rca.id``), read from ``rca_results``."""
        if self.documents is None:
            return None
        try:
            doc = await self.documents.get("incidents", incident_id)
            summary = doc.body.get("rca") if doc is not None else None
            if not isinstance(summary, dict) or not isinstance(summary.get("id"), str):
                return None
            found = await self.documents.get("rca_results", summary["id"])
            return RcaResult.from_document(found.body) if found is not None else None
        except Exception as exc:  # a message without its cause beats no message
            log.warning("analysis_unreadable", incident_id=incident_id, error=f"{type(exc).__name__}: {exc}")
            return None

    async def _analysis(self, incident_id: str) -> RcaResult | None:
        return self.analyses.get(incident_id) or await self._stored_analysis(incident_id)

    async def _incident_message(self, incident: IncidentRecord, rca: RcaResult | None) -> Notification:
        proposed = self.proposed.get(incident.id) or ""
        facts = incident_summary(incident, rca, proposed)
        text = (await enrich_summary(facts, self.llm)).text if self.llm is not None else facts
        return new_incident(incident, ui_url=self.ui_url, rca=rca, summary=text, proposed_action=proposed)

    async def on_incident(self, incident: IncidentRecord) -> int:
        """Notifications published for one incident revision."""
        if incident.merged_into is not None:
            # its members live on in the other incident, which is announced on its own
            self.notifications.close(incident.id)
            self.incidents.pop(incident.id)
            return 0
        previous = self.incidents.get(incident.id)
        if previous is not None and incident.revision <= previous.revision:
            return 0  # delivered again, or older than what was announced
        self.incidents.put(incident.id, incident)
        if previous is None:
            if incident.status is IncidentStatus.RESOLVED:
                return 0  # over before this process saw it: nothing to say
            self._publish(await self._incident_message(incident, await self._analysis(incident.id)))
            return 1
        published = 0
        if incident.severity is not previous.severity and incident.status is not IncidentStatus.RESOLVED:
            self._publish(severity_changed(incident, previous.severity, ui_url=self.ui_url))
            published += 1
        if incident.status is not previous.status or set(incident.services) != set(previous.services):
            self._publish(await self._incident_message(incident, await self._analysis(incident.id)))
            published += 1
        return published

    async def on_analysis(self, result: RcaResult) -> int:
        """An update of the incident's message when the analysis names another top cause."""
        kept = self.analyses.get(result.incident_id)
        if kept is not None and result.incident_revision < kept.incident_revision:
            return 0
        self.analyses.put(result.incident_id, result)
        incident = self.incidents.get(result.incident_id)
        if incident is None or incident.status is IncidentStatus.RESOLVED or result.top is None:
            return 0
        before = kept.top if kept is not None else None
        if before is not None and (before.service, before.kind) == (result.top.service, result.top.kind):
            return 0
        self._publish(await self._incident_message(incident, result))
        return 1

    # -- executions ----------------------------------------------------------------------------------------------

    async def _incident_of(self, record: ExecutionRecord) -> IncidentRecord:
        """The incident an execution is for: remembered, else stored, else one made of the execution's fields
        (taken as major, so that routes by severity do not lose an approval request)."""
        known = self.incidents.get(record.incident_id)
        if known is not None:
            return known
        if self.documents is not None:
            try:
                doc = await self.documents.get("incidents", record.incident_id)
                if doc is not None:
                    return IncidentRecord.from_document(doc.body)
            except Exception as exc:
                log.warning("incident_unreadable", incident_id=record.incident_id, error=f"{type(exc).__name__}: {exc}")
        return IncidentRecord(
            id=record.incident_id,
            revision=1,
            title=record.title or record.runbook_id,
            severity=IncidentSeverity.MAJOR,
            services=list(record.services),
            started_at=record.requested_at,
            updated_at=record.updated_at,
            members=[],
        )

    async def on_execution(self, record: ExecutionRecord) -> int:
        """Notifications published for one execution state (none for a state already announced)."""
        key = (record.id, record.status.value)
        if key in self.sent:
            return 0
        runbook = record.title or record.runbook_id
        if record.status is ExecutionStatus.PENDING_APPROVAL:
            incident = await self._incident_of(record)
            self.proposed.put(record.incident_id, runbook)
            n = approval_request(
                incident,
                ui_url=self.ui_url,
                approval_id=record.id,
                runbook=runbook,
                risk=record.risk,
                blast_radius=record.blast_radius.describe(),
                dry_run=_approval_text(record),
            )
        elif record.status in _RESULTS:
            incident = await self._incident_of(record)
            n = execution_result(
                incident,
                ui_url=self.ui_url,
                execution_id=record.id,
                runbook=runbook,
                outcome=_RESULTS[record.status],
                detail=_result_text(record),
            )
        else:
            return 0  # approved, running, verifying: the approvers and the UI follow those, not the channels
        self._publish(n)
        published = 1
        if record.status in _ESCALATES:
            reason = f"{runbook} {_RESULTS[record.status]} for {record.incident_id}"
            self.notifications.escalate_now(record.incident_id, reason, about=n)
            PUBLISHED.labels(EventKind.ESCALATION.value).inc()
            published += 1
        self.sent.put(key, None)
        return published


def _guarded(name: str, handle: Callable[[Any], Awaitable[int]]) -> Callable[[Any], Awaitable[int]]:
    """``handle`` for :func:`install_agent`, where one record that cannot be told never stops the notifications."""
    meter = AgentMeter(name)

    async def run(record: Any) -> int:
        try:
            return await handle(record)
        except Exception as exc:
            meter.dropped("notify_error", f"{type(exc).__name__}: {exc}")
            log.exception("notification_not_made", agent=name)
            return 0

    return run


def _agent(
    app: faust.App,
    topic: faust.TopicT,
    name: str,
    decode: Callable[[bytes], Any],
    handle: Callable[[Any], Awaitable[int]],
) -> None:
    install_agent(app, topic, name, decode, _guarded(name, handle))


def install(
    app: faust.App, settings: ActionSettings, notifications: Notifications, documents: DocumentStore | None
) -> None:
    """The notifier's agents on ``app``; ``notifications`` start with the worker and drain when it stops (up to
    5 s, after the agents stopped taking records)."""
    notifier = Notifier(settings, notifications, documents)
    prefix = settings.topic_prefix

    async def start_notifications() -> None:
        await notifications.start()

    async def drain_notifications(*args: Any, **kwargs: Any) -> None:
        left = sum(s.pending for s in notifications.senders.values())
        await notifications.stop(drain_s=5.0)
        log.info("notifications_stopped", pending_at_stop=left)

    app.task(start_notifications)
    app.on_before_shutdown.connect(drain_notifications)

    _agent(
        app, declare(app, Topics.INCIDENTS, prefix), "notifier_incidents", IncidentRecord.decode, notifier.on_incident
    )
    _agent(app, declare(app, Topics.RCA_RESULTS, prefix), "notifier_analyses", RcaResult.decode, notifier.on_analysis)
    _agent(app, declare(app, Topics.ACTIONS, prefix), "notifier_actions", ExecutionRecord.decode, notifier.on_execution)
