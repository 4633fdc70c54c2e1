"""Shaping stored incidents, analyses, changes and log lines into the API's bodies (no I/O here)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aiops_common.documents import Document
from aiops_common.documents._protocol import decode_cursor
from aiops_common.schemas import IncidentRecord, IncidentStatus, RcaResult
from aiops_common.topology import Change

from aiops_gateway.views.models import ChangeView, LogLine, TimelineEntry

__all__ = [
    "LIFECYCLE",
    "LOG_LINES",
    "SUMMARY_FIELDS",
    "URGENT_SEVERITIES",
    "cause_services",
    "check_cursor",
    "lifecycle_conflict",
    "linked_changes",
    "newest_rca",
    "ordered_logs",
    "summary",
    "timeline",
]

#: The lifecycle routes (``POST /incidents/{id}/<verb>``) and the status each asks for.
LIFECYCLE: Mapping[str, IncidentStatus] = {
    "acknowledge": IncidentStatus.ACKNOWLEDGED,
    "mitigate": IncidentStatus.MITIGATED,
    "resolve": IncidentStatus.RESOLVED,
    "reopen": IncidentStatus.OPEN,
}

LOG_LINES = 200
"""Most log lines an incident's detail carries."""

#: Log severities shown before the others (the log indexer keeps severities lower-cased).
URGENT_SEVERITIES = ("fatal", "critical", "error", "warn", "warning")


def check_cursor(cursor: str) -> None:
    """Refuse (``ValueError``) a cursor the document store did not make, before it reaches a query."""
    try:
        ms, doc_id = decode_cursor(cursor)
    except ValueError:
        raise ValueError("not a cursor of this list (pass next_cursor as it came)") from None
    if abs(ms) >= 2**53 or not doc_id:
        raise ValueError("not a cursor of this list (pass next_cursor as it came)")


#: The fields of a stored incident a list entry is made of: a page reads these, not every member of each.
SUMMARY_FIELDS = (
    "id",
    "title",
    "summary",
    "status",
    "severity",
    "services",
    "started_at",
    "updated_at",
    "resolved_at",
    "revision",
    "member_count",
    "change_count",
    "rca",
)


def _top_cause(rca: Any) -> dict[str, Any] | None:
    if not isinstance(rca, Mapping):
        return None
    causes = rca.get("causes")
    if not isinstance(causes, list) or not causes or not isinstance(causes[0], Mapping):
        return None
    top = causes[0]
    return {"service": top["service"], "probability": top["probability"], "kind": top.get("kind", "unknown")}


def summary(body: Mapping[str, Any]) -> dict[str, Any]:
    """A list entry (``IncidentSummary``'s JSON) from a stored incident body, or from its :data:`SUMMARY_FIELDS`.

    Built as plain JSON values, not a model: a page of 50 is the gateway's most frequent answer, and the stored
    values are already JSON (checked when the record was made). Members and changes are counted by the stored
    counts, or counted here for a body written without them.
    """
    members, changes = body.get("member_count"), body.get("change_count")
    return {
        "id": body["id"],
        "title": body["title"],
        "summary": body.get("summary") or "",
        "status": body["status"],
        "severity": body["severity"],
        "services": body.get("services") or [],
        "started_at": body["started_at"],
        "updated_at": body["updated_at"],
        "resolved_at": body.get("resolved_at"),
        "member_count": members if isinstance(members, int) else len(body.get("members") or ()),
        "change_count": changes if isinstance(changes, int) else len(body.get("changes") or ()),
        "revision": body["revision"],
        "top_cause": _top_cause(body.get("rca")),
    }


def newest_rca(bodies: Iterable[Mapping[str, Any]]) -> RcaResult | None:
    """The analysis of the highest incident revision (the latest analysis of it on a tie)."""
    best: Mapping[str, Any] | None = None
    for body in bodies:
        rank = (int(body.get("incident_revision", 0)), str(body.get("analyzed_at", "")))
        if best is None or rank > (int(best.get("incident_revision", 0)), str(best.get("analyzed_at", ""))):
            best = body
    return None if best is None else RcaResult.model_validate(best)


def cause_services(incident: IncidentRecord, rca: RcaResult | None) -> set[str]:
    """Services a cause label may name: the incident's and those its analysis ranked."""
    names = set(incident.services)
    if rca is not None:
        names.update(c.service for c in rca.causes)
    return names


def linked_changes(incident: IncidentRecord, recorded: Sequence[Change]) -> list[ChangeView]:
    """The incident's own changes and the recorded changes of its services, each id once, oldest first."""
    views: dict[str, ChangeView] = {}
    for c in incident.changes:
        views[c.id] = ChangeView(
            id=c.id,
            service=c.service,
            kind=c.kind,
            at=c.at,
            version=c.version,
            text=c.text or f"{c.service} {c.kind} {c.version}".strip(),
            before_onset_s=c.before_onset_s,
            source="correlation",
        )
    for change in recorded:
        if change.id in views:
            continue
        version = str(change.attributes.get("version", ""))
        views[change.id] = ChangeView(
            id=change.id,
            service=change.service,
            kind=change.kind,
            at=change.at,
            version=version,
            text=change.description or f"{change.service} {change.kind} {version}".strip(),
            before_onset_s=(incident.started_at - change.at).total_seconds(),
            source="topology",
            attributes=dict(change.attributes),
        )
    return sorted(views.values(), key=lambda v: (v.at, v.id))


def ordered_logs(documents: Iterable[Document], limit: int = LOG_LINES) -> list[LogLine]:
    """Errors and warnings first, then the other lines, each part oldest first; each line once, ``limit`` at most."""
    seen: dict[str, LogLine] = {}
    for doc in documents:
        if doc.id not in seen:
            seen[doc.id] = LogLine.model_validate({**doc.body, "id": doc.id})
    lines = sorted(seen.values(), key=lambda line: (line.severity.lower() not in URGENT_SEVERITIES, line.at, line.id))
    return lines[:limit]


def timeline(incident: IncidentRecord, changes: Sequence[ChangeView], rca: RcaResult | None) -> list[TimelineEntry]:
    """Members joining, lifecycle changes with who and why, changes deployed, merges and the analysis, by time."""
    entries: list[TimelineEntry] = []
    for m in incident.members:
        where = f" on {m.service}" if m.service else ""
        if m.reason.rule == "seed":
            why = "opened the incident"
        else:
            why = f"joined ({m.reason.rule}{': ' + m.reason.text if m.reason.text else ''})"
        entries.append(TimelineEntry(at=m.joined_at, kind="member", text=f"{m.kind.value} {m.name}{where} {why}"))
    for h in incident.history:
        note = f": {h.note}" if h.note else ""
        entries.append(TimelineEntry(at=h.at, kind="status", text=f"{h.status.value} by {h.by}{note}"))
    for c in changes:
        entries.append(TimelineEntry(at=c.at, kind="change", text=c.text or f"{c.service} {c.kind}"))
    for merged in incident.merged:
        text = f"{merged.incident_id} merged in{': ' + merged.reason if merged.reason else ''}"
        entries.append(TimelineEntry(at=merged.at, kind="merge", text=text))
    if rca is not None:
        top = rca.top
        if top is not None:
            text = f"root cause analysed: {top.service} ({top.kind.value}, p={top.probability:.2f})"
        else:
            text = f"root cause analysed: {rca.status.value}"
        entries.append(
            TimelineEntry(at=rca.analyzed_at, kind="rca", text=f"{text} for revision {rca.incident_revision}")
        )
    order = {"change": 0, "member": 1, "merge": 2, "status": 3, "rca": 4}
    return sorted(entries, key=lambda e: (e.at, order[e.kind]))


def lifecycle_conflict(incident: Mapping[str, Any], target: IncidentStatus) -> str | None:
    """Why asking a stored incident for ``target`` makes no sense, or None when it does."""
    merged_into = incident.get("merged_into")
    if merged_into:
        return f"incident {incident['id']} was merged into {merged_into}; change that one"
    current = IncidentStatus(incident["status"])
    if current == target:
        return f"incident {incident['id']} is already {current.value}"
    if target is IncidentStatus.OPEN and current is not IncidentStatus.RESOLVED:
        return f"incident {incident['id']} is {current.value}, not resolved: only a resolved incident is reopened"
    if current is IncidentStatus.RESOLVED and target is not IncidentStatus.OPEN:
        return f"incident {incident['id']} is resolved; reopen it first"
    if current is IncidentStatus.MITIGATED and target is IncidentStatus.ACKNOWLEDGED:
        return f"incident {incident['id']} is already mitigated, which is past acknowledged"
    return None
