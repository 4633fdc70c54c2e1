"""What a notification says, whatever the channel: one :class:`Notification` per event, built from an incident."""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from urllib.parse import quote

from aiops_common.schemas.incidents import IncidentRecord, IncidentSeverity, IncidentStatus
from aiops_common.schemas.rca import RankedCause, RcaResult

from aiops_action.notify.summary import strongest_evidence

__all__ = [
    "EventKind",
    "Notification",
    "approval_request",
    "execution_result",
    "incident_link",
    "incident_teams",
    "new_incident",
    "severity_changed",
]


class EventKind(enum.StrEnum):
    INCIDENT = "incident"
    """A new incident, then its updates (grouped: at most one update per interval)."""
    SEVERITY = "severity"
    APPROVAL = "approval"
    EXECUTION = "execution"
    ESCALATION = "escalation"
    DIGEST = "digest"
    """Messages a channel's rate limit held back, sent together."""


@dataclass(frozen=True)
class Notification:
    """Plain text only: each channel escapes it for its own format (Slack mrkdwn, JSON)."""

    kind: EventKind
    incident_id: str
    title: str
    severity: IncidentSeverity
    text: str = ""
    services: tuple[str, ...] = ()
    teams: tuple[str, ...] = ()
    fields: tuple[tuple[str, str], ...] = ()
    cause: str = ""
    evidence: tuple[str, ...] = ()
    proposed_action: str = ""
    link: str = ""
    link_label: str = "Open in the UI"
    group_key: str = ""
    """Within one incident and kind, notifications with different keys are not grouped (two approvals)."""
    update: bool = False
    """A later message for the same incident and kind (set by grouping)."""
    status: IncidentStatus = IncidentStatus.OPEN
    """The incident's status when the message was made: one no longer open stops its escalation."""

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind.value,
            "update": self.update,
            "incident_id": self.incident_id,
            "title": self.title,
            "severity": self.severity.value,
            "text": self.text,
            "services": list(self.services),
            "teams": list(self.teams),
            "fields": {k: v for k, v in self.fields},
            "cause": self.cause,
            "evidence": list(self.evidence),
            "proposed_action": self.proposed_action,
            "link": self.link,
            "status": self.status.value,
        }


def incident_link(ui_url: str, incident_id: str) -> str:
    """``{ui_url}/#/incidents/{id}``, the id quoted so that it cannot change the link's shape."""
    return f"{ui_url.rstrip('/')}/#/incidents/{quote(incident_id, safe='')}"


def incident_teams(incident: IncidentRecord) -> tuple[str, ...]:
    """Teams named by the members' ``team`` labels, sorted."""
    return tuple(sorted({m.labels["team"] for m in incident.members if m.labels.get("team")}))


def _cause(rca: RcaResult | None) -> tuple[str, tuple[str, ...]]:
    top: RankedCause | None = rca.top if rca is not None else None
    if top is None:
        return "", ()
    text = f"{top.service} ({top.kind.value}, probability {top.probability:.0%})"
    best = strongest_evidence(top)
    ordered = [best, *[e for e in top.evidence if e is not best]] if best is not None else []
    return text, tuple(e.text for e in ordered[:3] if e.text)


def _base(incident: IncidentRecord, ui_url: str, kind: EventKind) -> Notification:
    return Notification(
        kind=kind,
        incident_id=incident.id,
        title=incident.title,
        severity=incident.severity,
        services=tuple(incident.services),
        teams=incident_teams(incident),
        link=incident_link(ui_url, incident.id),
        status=incident.status,
    )


def new_incident(
    incident: IncidentRecord,
    *,
    ui_url: str,
    rca: RcaResult | None = None,
    summary: str = "",
    proposed_action: str = "",
) -> Notification:
    cause, evidence = _cause(rca)
    return replace(
        _base(incident, ui_url, EventKind.INCIDENT),
        title=incident.title,
        text=summary or incident.summary,
        fields=(
            ("Severity", incident.severity.value),
            ("Status", incident.status.value),
            ("Services", ", ".join(incident.services) or "unknown"),
            ("Since", incident.started_at.isoformat()),
            ("Signals", str(len(incident.members))),
        ),
        cause=cause,
        evidence=evidence,
        proposed_action=proposed_action,
    )


def severity_changed(incident: IncidentRecord, previous: IncidentSeverity, *, ui_url: str) -> Notification:
    direction = "raised" if incident.severity.rank > previous.rank else "lowered"
    return replace(
        _base(incident, ui_url, EventKind.SEVERITY),
        title=f"Severity {direction} to {incident.severity.value}: {incident.title}",
        text=f"Severity {direction} from {previous.value} to {incident.severity.value}.",
        fields=(("Severity", f"{previous.value} -> {incident.severity.value}"), ("Status", incident.status.value)),
    )


def approval_request(
    incident: IncidentRecord,
    *,
    ui_url: str,
    approval_id: str,
    runbook: str,
    risk: str,
    blast_radius: str,
    dry_run: str = "",
) -> Notification:
    """An execution waiting for a person: the link opens the incident page, where approve and reject are."""
    return replace(
        _base(incident, ui_url, EventKind.APPROVAL),
        title=f"Approval needed: {runbook} for {incident.title}",
        text=dry_run,
        fields=(("Runbook", runbook), ("Risk", risk), ("Blast radius", blast_radius), ("Approval", approval_id)),
        proposed_action=runbook,
        link_label="Review and approve",
        group_key=approval_id,
    )


def execution_result(
    incident: IncidentRecord,
    *,
    ui_url: str,
    execution_id: str,
    runbook: str,
    outcome: str,
    detail: str = "",
) -> Notification:
    """``outcome``: e.g. ``succeeded``, ``failed``, ``rolled back``."""
    return replace(
        _base(incident, ui_url, EventKind.EXECUTION),
        title=f"{runbook} {outcome}: {incident.title}",
        text=detail,
        fields=(("Runbook", runbook), ("Outcome", outcome), ("Execution", execution_id)),
        group_key=execution_id,
    )
