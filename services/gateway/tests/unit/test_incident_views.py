"""How the API shapes stored incidents, analyses, changes and log lines: times and cursors refused before they reach
a store, list entries, the newest analysis, linked changes, log order, the timeline and lifecycle conflicts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiops_common.documents import Document
from aiops_common.schemas import (
    CauseKind,
    IncidentMember,
    IncidentRecord,
    IncidentSeverity,
    IncidentStatus,
    JoinReason,
    LinkedChange,
    MemberKind,
    RankedCause,
    RcaResult,
    RcaStatus,
    StatusChange,
)
from aiops_common.topology import Change
from aiops_gateway.views.incidents import (
    SUMMARY_FIELDS,
    cause_services,
    check_cursor,
    lifecycle_conflict,
    linked_changes,
    newest_rca,
    ordered_logs,
    summary,
    timeline,
)
from aiops_gateway.views.models import IncidentSummary
from aiops_gateway.views.times import parse_instant

pytestmark = pytest.mark.unit

ONSET = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _member(fingerprint: str, service: str, joined_s: float, rule: str = "topology") -> IncidentMember:
    at = ONSET + timedelta(seconds=joined_s)
    return IncidentMember(
        fingerprint=fingerprint,
        kind=MemberKind.ANOMALY if fingerprint.startswith("an-") else MemberKind.ALERT,
        name="HighLatency",
        service=service,
        started_at=at,
        lead=rule == "seed",
        reason=JoinReason(rule=rule, text="" if rule == "seed" else f"{service} calls payment"),
        joined_at=at,
    )


def _incident(**changes: Any) -> IncidentRecord:
    fields: dict[str, Any] = {
        "id": "inc-1",
        "revision": 3,
        "title": "payment latency",
        "summary": "checkout slow",
        "severity": IncidentSeverity.MAJOR,
        "services": ["payment", "checkout"],
        "started_at": ONSET,
        "updated_at": ONSET + timedelta(minutes=5),
        "members": [_member("fp-lead", "payment", 0, "seed"), _member("an-2", "checkout", 40)],
        "changes": [
            LinkedChange(
                id="chg-1", service="payment", version="v2", at=ONSET - timedelta(minutes=8), before_onset_s=480
            )
        ],
        "history": [StatusChange(status=IncidentStatus.ACKNOWLEDGED, at=ONSET + timedelta(minutes=2), by="ana")],
    }
    return IncidentRecord(**{**fields, **changes})


def _rca(revision: int, analyzed_min: int, top: str = "payment") -> RcaResult:
    return RcaResult(
        id=f"rca-{revision}-{analyzed_min}",
        incident_id="inc-1",
        incident_revision=revision,
        at=ONSET + timedelta(minutes=revision),
        analyzed_at=ONSET + timedelta(minutes=analyzed_min),
        status=RcaStatus.OK,
        causes=[
            RankedCause(service=top, probability=0.8, kind=CauseKind.DEPLOYMENT),
            RankedCause(service="db", probability=0.2),
        ],
    )


def test_times_are_durations_back_from_now_or_instants() -> None:
    assert parse_instant("30m", NOW) == NOW - timedelta(minutes=30)
    assert parse_instant("7d", NOW) == NOW - timedelta(days=7)
    assert parse_instant("1.5h", NOW) == NOW - timedelta(minutes=90)
    assert parse_instant("2026-03-01T09:00:00+01:00", NOW) == datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    assert parse_instant("2026-03-01T09:00", NOW) == datetime(2026, 3, 1, 9, 0, tzinfo=UTC)  # no zone: UTC
    # "+01:00" typed into a URL unencoded arrives as " 01:00"
    assert parse_instant("2026-03-01T09:00:00 01:00", NOW) == datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    assert parse_instant("2026-03-01 09:00", NOW) == datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize("text", ["yesterday", "5y", "", "999999999w", "2026-13-01T00:00", "-3h"])
def test_times_that_name_no_instant_a_store_can_keep_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration or an instant"):
        parse_instant(text, NOW)


def test_cursors_are_checked_before_a_query() -> None:
    check_cursor("1772359200000:inc-1")
    for bad in ("nope", "12ab:inc-1", "1772359200000:", f"{2**70}:inc-1"):
        with pytest.raises(ValueError, match="not a cursor"):
            check_cursor(bad)


def test_a_list_entry_counts_members_and_changes_and_shows_the_top_cause() -> None:
    body = {
        **_incident().document(),
        "rca": {
            "revision": 3,
            "causes": [{"service": "payment", "probability": 0.8, "kind": "deployment", "rule": ""}],
        },
    }
    entry = summary(body)
    assert IncidentSummary.model_validate(entry).top_cause is not None  # what the API documents
    assert (entry["id"], entry["status"], entry["member_count"], entry["change_count"], entry["revision"]) == (
        "inc-1",
        "open",
        2,
        1,
        3,
    )
    assert entry["top_cause"] == {"service": "payment", "probability": 0.8, "kind": "deployment"}
    assert summary(_incident().document())["top_cause"] is None
    assert summary({**body, "rca": {"causes": []}})["top_cause"] is None
    # Only the fields a list reads: the stored counts stand in for the members.
    projected = {f: body.get(f) for f in SUMMARY_FIELDS}
    assert summary(projected) == entry
    # A body written before the counts were stored is counted.
    older = {k: v for k, v in body.items() if k not in ("member_count", "change_count")}
    assert summary(older) == entry


def test_a_stored_incident_is_read_without_the_fields_other_services_add() -> None:
    incident = _incident()
    assert IncidentRecord.from_document({**incident.document(), "rca": {"revision": 1}}) == incident


def test_the_newest_analysis_is_of_the_highest_revision_then_the_latest() -> None:
    bodies = [_rca(2, 30).document(), _rca(3, 10).document(), _rca(3, 20, "db").document(), _rca(1, 50).document()]
    newest = newest_rca(bodies)
    assert newest is not None and (newest.incident_revision, newest.top and newest.top.service) == (3, "db")
    assert newest_rca([]) is None


def test_cause_labels_may_name_the_incidents_services_or_ranked_ones() -> None:
    incident = _incident()
    assert cause_services(incident, None) == {"payment", "checkout"}
    assert cause_services(incident, _rca(3, 10)) == {"payment", "checkout", "db"}


def test_linked_changes_are_the_incidents_and_its_services_each_once_oldest_first() -> None:
    recorded = [
        Change(id="chg-1", service="payment", at=ONSET - timedelta(minutes=8), description="again"),
        Change(
            id="chg-2",
            service="checkout",
            at=ONSET - timedelta(minutes=20),
            kind="config",
            attributes={"version": "c7"},
        ),
        Change(id="chg-3", service="payment", at=ONSET + timedelta(minutes=3), description="hotfix v2.1"),
    ]
    views = linked_changes(_incident(), recorded)
    assert [(v.id, v.source) for v in views] == [("chg-2", "topology"), ("chg-1", "correlation"), ("chg-3", "topology")]
    assert views[0].version == "c7" and views[0].before_onset_s == 1200.0 and views[0].text == "checkout config c7"
    assert views[1].text == "payment deployment v2"  # the incident's own, not the store's later copy
    assert views[2].before_onset_s == -180.0 and views[2].text == "hotfix v2.1"


def test_log_lines_show_errors_and_warnings_first_each_part_oldest_first() -> None:
    def line(n: int, minute: int, severity: str) -> Document:
        at = (ONSET + timedelta(minutes=minute)).isoformat()
        body = {"at": at, "services": ["payment"], "severity": severity, "message": f"line {n}"}
        return Document(f"log-{n}", 1, body)

    docs = [line(1, -10, "info"), line(2, 5, "error"), line(3, -5, "warn"), line(4, -12, "debug"), line(2, 5, "error")]
    ordered = ordered_logs(docs)
    assert [entry.id for entry in ordered] == ["log-3", "log-2", "log-4", "log-1"]
    assert ordered[0].message == "line 3"
    assert [entry.id for entry in ordered_logs(docs, limit=3)] == ["log-3", "log-2", "log-4"]


def test_the_timeline_orders_members_status_changes_deployments_and_the_analysis() -> None:
    incident = _incident()
    entries = timeline(incident, linked_changes(incident, []), _rca(3, 6))
    assert [(e.kind, e.at) for e in entries] == [
        ("change", ONSET - timedelta(minutes=8)),
        ("member", ONSET),
        ("member", ONSET + timedelta(seconds=40)),
        ("status", ONSET + timedelta(minutes=2)),
        ("rca", ONSET + timedelta(minutes=6)),
    ]
    texts = [e.text for e in entries]
    assert texts[1] == "alert HighLatency on payment opened the incident"
    assert texts[2] == "anomaly HighLatency on checkout joined (topology: checkout calls payment)"
    assert texts[3] == "acknowledged by ana"
    assert "payment (deployment, p=0.80)" in texts[4]


@pytest.mark.parametrize(
    ("current", "target", "conflict"),
    [
        ("open", IncidentStatus.ACKNOWLEDGED, None),
        ("open", IncidentStatus.MITIGATED, None),
        ("acknowledged", IncidentStatus.RESOLVED, None),
        ("resolved", IncidentStatus.OPEN, None),
        ("open", IncidentStatus.OPEN, "already open"),
        ("acknowledged", IncidentStatus.OPEN, "not resolved"),
        ("resolved", IncidentStatus.ACKNOWLEDGED, "reopen it first"),
        ("resolved", IncidentStatus.RESOLVED, "already resolved"),
        ("mitigated", IncidentStatus.ACKNOWLEDGED, "past acknowledged"),
    ],
)
def test_lifecycle_changes_that_make_no_sense_say_why(
    current: str, target: IncidentStatus, conflict: str | None
) -> None:
    reason = lifecycle_conflict({"id": "inc-1", "status": current}, target)
    assert reason is None if conflict is None else (reason is not None and conflict in reason)


def test_a_merged_incident_takes_no_lifecycle_change() -> None:
    reason = lifecycle_conflict({"id": "inc-1", "status": "resolved", "merged_into": "inc-9"}, IncidentStatus.OPEN)
    assert reason is not None and "merged into inc-9" in reason
