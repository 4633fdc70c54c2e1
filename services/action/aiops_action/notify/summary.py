"""The deterministic incident summary: what, where, since when, probable cause and its evidence, change, action."""

from __future__ import annotations

from aiops_common.schemas.incidents import IncidentRecord, LinkedChange, MemberKind
from aiops_common.schemas.rca import Evidence, EvidenceKind, RankedCause, RcaResult, RcaStatus

__all__ = ["incident_summary", "linked_change", "strongest_evidence"]

_MAX_VALUE = 200
"""Longest piece of incident text quoted in a summary: a label cannot flood a message."""


def _clip(text: str) -> str:
    # one line per fact: a newline in a label cannot forge another line of the summary
    flat = " ".join(text.split())
    return flat if len(flat) <= _MAX_VALUE else flat[: _MAX_VALUE - 3] + "..."


def strongest_evidence(cause: RankedCause) -> Evidence | None:
    """The evidence with the largest weight in favour; the first listed when none is weighted in favour."""
    favour = [e for e in cause.evidence if e.weight > 0]
    if favour:
        return max(favour, key=lambda e: e.weight)  # max keeps the first of equals: stable
    return cause.evidence[0] if cause.evidence else None


def linked_change(incident: IncidentRecord, rca: RcaResult | None = None) -> str:
    """The change closest before onset (the incident's, or a change the top cause's evidence names)."""
    before = [c for c in incident.changes if c.before_onset_s >= 0]
    if before:
        change: LinkedChange = min(before, key=lambda c: (c.before_onset_s, c.id))
        if change.text:
            return _clip(change.text)
        version = f" {change.version}" if change.version else ""
        return _clip(f"{change.service}{version} {change.kind} {change.before_onset_s / 60:.0f} min before onset")
    top = rca.top if rca is not None else None
    if top is not None:
        for e in top.evidence:
            if e.kind is EvidenceKind.CHANGE:
                return _clip(e.text or f"{top.service} {e.version} changed".strip())
    return ""


def _cause_line(rca: RcaResult | None) -> str:
    if rca is None:
        return "not analysed yet"
    if rca.status is RcaStatus.NO_ANOMALY or rca.top is None:
        return "none found (no series moved beyond its baseline)"
    top = rca.top
    line = f"{_clip(top.service)} ({top.kind.value}, probability {top.probability:.0%})"
    best = strongest_evidence(top)
    if best is not None and best.text:
        line += f"; strongest evidence: {_clip(best.text)}"
    if rca.status is RcaStatus.DEGRADED and rca.missing:
        line += f" [partial: {_clip(', '.join(rca.missing))}]"
    return line


def incident_summary(incident: IncidentRecord, rca: RcaResult | None = None, proposed_action: str = "") -> str:
    """Six lines of facts taken from the incident and its analysis; the same inputs give the same text.

    Incident text (titles, services, labels) is flattened to one line and clipped, never interpreted.
    """
    counts = {kind: sum(1 for m in incident.members if m.kind is kind) for kind in MemberKind}
    signals = ", ".join(f"{n} {kind.value}{'s' if n != 1 else ''}" for kind, n in counts.items() if n)
    lead = incident.lead
    where = ", ".join(_clip(s) for s in incident.services[:10]) or "unknown service"
    if len(incident.services) > 10:
        where += f" and {len(incident.services) - 10} more"
    lines = [
        f"What: {incident.severity.value} incident, {_clip(incident.title)} ({signals or 'no signals'})"
        + (f", led by {_clip(lead.name)}" if lead is not None else ""),
        f"Where: {where}",
        f"Since: {incident.started_at.isoformat()} (status {incident.status.value})",
        f"Probable cause: {_cause_line(rca)}",
        f"Linked change: {linked_change(incident, rca) or 'none found'}",
        f"Proposed action: {_clip(proposed_action) if proposed_action else 'none yet'}",
    ]
    return "\n".join(lines)
