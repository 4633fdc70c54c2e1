"""``Notifications.escalate_now`` without I/O: which channels, past grouping and rate limits, what it says."""

from __future__ import annotations

import pytest
from aiops_action.notify.config import parse_config
from aiops_action.notify.dispatch import Notifications
from aiops_action.notify.messages import EventKind, Notification
from aiops_common.schemas.incidents import IncidentSeverity, IncidentStatus

pytestmark = pytest.mark.unit

CHANNELS = """
channels:
  - {name: ops, kind: slack, url: "https://hooks.slack.example/T/B/x", rate_limit: 1/hour}
  - {name: team, kind: slack, url: "https://hooks.slack.example/T/B/y"}
  - {name: pager, kind: webhook, url: "https://pager.example/hook", secret: s3cret}
routes:
  - match: {min_severity: major}
    channels: [ops]
  - match: {services: [payment]}
    channels: [team]
"""
ESCALATION = """
escalation:
  - {after_s: 900, channels: [pager]}
  - {after_s: 300, channels: [team]}
"""


def notifications(text: str) -> tuple[Notifications, list[float]]:
    now = [1000.0]
    return Notifications(parse_config(text), clock=lambda: now[0]), now


def queued(n: Notifications, channel: str) -> list[Notification]:
    return list(n.senders[channel]._queue)


def incident(kind: EventKind = EventKind.INCIDENT, severity: IncidentSeverity = IncidentSeverity.MAJOR) -> Notification:
    return Notification(
        kind=kind,
        incident_id="inc-1",
        title="payment latency",
        severity=severity,
        services=("payment",),
        text="What: major incident",
        link="http://ui.example/#/incidents/inc-1",
        status=IncidentStatus.OPEN,
    )


def test_it_goes_to_the_first_escalation_step_at_once() -> None:
    n, _ = notifications(CHANNELS + ESCALATION)
    n.publish(incident())
    assert n.escalate_now("inc-1", "restart rolled back") == ["team"]  # after_s 300 is the first step
    (sent,) = [m for m in queued(n, "team") if m.kind is EventKind.ESCALATION]
    assert sent.title == "Escalating: restart rolled back"
    assert sent.text.startswith("restart rolled back\n")
    assert sent.link == "http://ui.example/#/incidents/inc-1"
    assert sent.link_label == "Acknowledge in the UI"
    assert not sent.update
    assert queued(n, "pager") == []  # the later step waits for its time
    assert n.tick() == []  # and the timer's first step is still the timer's


def test_without_escalation_it_goes_where_the_incident_is_routed() -> None:
    n, _ = notifications(CHANNELS)
    about = incident(EventKind.EXECUTION)
    assert n.escalate_now("inc-1", "expired unapproved", about=about) == ["ops", "team"]
    assert [m.kind for m in queued(n, "ops")] == [EventKind.ESCALATION]
    assert [m.incident_id for m in queued(n, "team")] == ["inc-1"]


def test_it_skips_grouping_and_rate_limits() -> None:
    n, now = notifications(CHANNELS)
    n.publish(incident())  # takes the ops channel's one message this hour
    n.publish(incident(EventKind.SEVERITY))  # held by the rate limit
    assert [m.kind for m in queued(n, "ops")] == [EventKind.INCIDENT]
    now[0] += 1
    first = n.escalate_now("inc-1", "failed")
    second = n.escalate_now("inc-1", "failed again")
    assert first == second == ["ops", "team"]
    assert [m.title for m in queued(n, "ops")[1:]] == ["Escalating: failed", "Escalating: failed again"]


def test_it_is_built_from_what_it_is_about() -> None:
    n, _ = notifications(CHANNELS + ESCALATION)
    n.publish(incident())
    about = Notification(
        kind=EventKind.EXECUTION,
        incident_id="inc-1",
        title="restart rolled back: payment latency",
        severity=IncidentSeverity.CRITICAL,
        fields=(("Outcome", "rolled back"),),
        group_key="exe-1",
        text="Verification: p95 stayed above 0.5",
    )
    n.escalate_now("inc-1", "restart rolled back", about=about)
    (sent,) = [m for m in queued(n, "team") if m.kind is EventKind.ESCALATION]
    assert sent.severity is IncidentSeverity.CRITICAL
    assert ("Outcome", "rolled back") in sent.fields
    assert "Verification: p95 stayed above 0.5" in sent.text


def test_an_unknown_incident_without_a_message_sends_nothing() -> None:
    n, _ = notifications(CHANNELS + ESCALATION)
    assert n.escalate_now("inc-404", "failed") == []
    assert all(queued(n, c) == [] for c in ("ops", "team", "pager"))
