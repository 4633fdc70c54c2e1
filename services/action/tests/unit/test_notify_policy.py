"""Notification policy without I/O: the YAML, routes, grouping, rate limits, escalation timing, retry delays."""

from __future__ import annotations

import random

import pytest
from aiops_action.notify.config import EscalationStep, NotifyConfigError, RateLimit, parse_config, parse_rate_limit
from aiops_action.notify.delivery import RetryPolicy, parse_retry_after, retry_delay
from aiops_action.notify.escalation import EscalationChecker, due_steps
from aiops_action.notify.messages import EventKind, Notification
from aiops_action.notify.routing import Grouper, RateLimiter, Router
from aiops_common.schemas.incidents import IncidentSeverity

pytestmark = pytest.mark.unit

CONFIG = """
channels:
  - {name: ops-slack, kind: slack, url: "https://hooks.slack.example/T/B/x", rate_limit: 10/minute}
  - {name: payments-slack, kind: slack, url: "https://hooks.slack.example/T/B/y"}
  - {name: pager, kind: webhook, url: "https://pager.example/hook", secret: s3cret}
routes:
  - match: {min_severity: major}
    channels: [ops-slack]
  - match: {services: [payment], teams: [payments]}
    channels: [payments-slack, ops-slack]
escalation:
  - {after_s: 900, channels: [pager]}
  - {after_s: 300, channels: [payments-slack]}
group_interval_s: 60
"""


def note(
    incident_id: str = "inc-1",
    kind: EventKind = EventKind.INCIDENT,
    severity: IncidentSeverity = IncidentSeverity.MAJOR,
    services: tuple[str, ...] = ("payment",),
    teams: tuple[str, ...] = ("payments",),
    title: str = "t",
) -> Notification:
    return Notification(
        kind=kind, incident_id=incident_id, title=title, severity=severity, services=services, teams=teams
    )


STEPS = [EscalationStep(after_s=900, channels=["pager"]), EscalationStep(after_s=300, channels=["team"])]


def test_config_loads_channels_routes_and_escalation() -> None:
    config = parse_config(CONFIG)
    assert config.channel("ops-slack").rate_limit == RateLimit(count=10, period_s=60)
    secret = config.channel("pager").secret
    assert secret is not None and secret.get_secret_value() == "s3cret"
    assert [s.after_s for s in config.escalation_steps] == [300, 900]
    assert config.group_interval_s == 60
    assert "s3cret" not in repr(config)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("channels: [{name: a, kind: webhook, url: 'http://x'}]", "needs a secret"),
        ("channels: [{name: a, kind: email, url: 'http://x'}]", "channels.0.kind"),
        ("channels: [{name: a, kind: slack, url: 'http://x', rate_limit: lots}]", "COUNT/PERIOD"),
        ("routes: [{channels: [nowhere]}]", "not defined: ['nowhere']"),
        ("- just a list", "must be a mapping"),
        ("channels: [", "cannot read"),
    ],
)
def test_a_bad_config_is_one_clear_error_naming_the_file(text: str, problem: str) -> None:
    with pytest.raises(NotifyConfigError) as raised:
        parse_config(text, "/etc/aiops/notify.yaml")
    assert str(raised.value).startswith("/etc/aiops/notify.yaml: ")
    assert problem in str(raised.value)


def test_rate_limit_text() -> None:
    assert parse_rate_limit("3/second") == RateLimit(count=3, period_s=1)
    assert parse_rate_limit(" 100 / hours ") == RateLimit(count=100, period_s=3600)
    with pytest.raises(ValueError, match="COUNT/PERIOD"):
        parse_rate_limit("10 per minute")


def test_routing_by_severity_service_and_team() -> None:
    router = Router(parse_config(CONFIG))
    assert router.channels(note()) == ["ops-slack", "payments-slack"]
    assert router.channels(note(severity=IncidentSeverity.MINOR)) == ["payments-slack", "ops-slack"]
    assert router.channels(note(severity=IncidentSeverity.MINOR, teams=("search",))) == []
    assert router.channels(note(severity=IncidentSeverity.WARNING, services=("search",))) == []
    assert router.channels(note(severity=IncidentSeverity.CRITICAL, services=("search",))) == ["ops-slack"]


def test_a_storm_of_updates_is_one_message_then_one_update_per_interval() -> None:
    grouper = Grouper(interval_s=60)
    sent = [n for i in range(1000) if (n := grouper.offer(note(title=f"rev {i}"), now=i * 0.01)) is not None]
    assert [(n.title, n.update) for n in sent] == [("rev 0", False)]
    assert grouper.due(now=30) == []
    due = grouper.due(now=60)
    assert [(n.title, n.update) for n in due] == [("rev 999", True)]  # the latest wins
    assert grouper.due(now=500) == []  # nothing new waited
    assert grouper.folded == 998
    # a quiet group sends the next update at once, then waits again
    assert grouper.offer(note(title="later"), now=200) is not None
    assert grouper.offer(note(title="later still"), now=201) is None


def test_grouping_keeps_incidents_kinds_and_keys_apart() -> None:
    grouper = Grouper(interval_s=60)
    approval = Notification(
        kind=EventKind.APPROVAL, incident_id="inc-1", title="a", severity=IncidentSeverity.MAJOR, group_key="apr-1"
    )
    other = Notification(
        kind=EventKind.APPROVAL, incident_id="inc-1", title="b", severity=IncidentSeverity.MAJOR, group_key="apr-2"
    )
    offered = [note(), note("inc-2"), note(kind=EventKind.SEVERITY), approval, other]
    assert all(grouper.offer(n, now=0) is not None for n in offered)
    grouper.forget("inc-1")
    assert grouper.offer(note(), now=1) == note()  # a new message, not an update


def test_rate_limit_holds_the_excess_for_one_digest_per_window() -> None:
    limiter = RateLimiter(RateLimit(count=2, period_s=60), max_held=3)
    admitted = [limiter.admit(note(f"inc-{i}"), now=float(i)) for i in range(7)]
    assert admitted == [True, True, False, False, False, False, False]
    assert limiter.digest(now=30) is None  # the window is still full
    ready = limiter.digest(now=60)
    assert ready is not None
    held, over = ready
    assert [n.incident_id for n in held] == ["inc-2", "inc-3", "inc-4"] and over == 2
    assert limiter.digest(now=61) is None  # nothing held any more
    assert limiter.admit(note("inc-9"), now=62)  # the digest used one of the new window's two
    assert not limiter.admit(note("inc-10"), now=63)


def test_escalation_steps_with_an_injected_clock() -> None:
    now = [0.0]
    checker = EscalationChecker(STEPS, clock=lambda: now[0])
    checker.track("inc-1")
    now[0] = 100
    checker.track("inc-2")
    checker.track("inc-1")  # tracked again: its clock does not restart
    now[0] = 299
    assert checker.check() == []
    now[0] = 300
    due = checker.check()
    assert [(d.incident_id, d.step, d.channels, d.final) for d in due] == [("inc-1", 0, ("team",), False)]
    assert checker.check() == []  # each step once
    assert checker.acknowledge("inc-2")
    now[0] = 10_000
    due = checker.check()
    assert [(d.incident_id, d.step, d.channels, d.final) for d in due] == [("inc-1", 1, ("pager",), True)]
    assert checker.tracked == ["inc-1"] and not checker.acknowledge("inc-2")


def test_due_steps_catch_up_after_a_long_pause() -> None:
    assert due_steps(STEPS, 1000, 0) == [0, 1]


def test_retry_delay_grows_with_jitter_and_honours_retry_after() -> None:
    policy = RetryPolicy(base_s=1, max_s=8, retry_after_max_s=30)
    rng = random.Random(7)
    for attempt, ceiling in [(1, 1), (2, 2), (3, 4), (4, 8), (9, 8)]:
        delays = {retry_delay(attempt, policy, rng=rng) for _ in range(20)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jittered
    assert retry_delay(1, policy, retry_after=12, rng=rng) == 12
    assert retry_delay(1, policy, retry_after=3600, rng=rng) == 30


def test_retry_after_header() -> None:
    assert parse_retry_after("7") == 7
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470) == 10
    assert parse_retry_after("") is None and parse_retry_after("later") is None
