"""Notifications delivered to real HTTP receivers on loopback: retries, give-ups, slow receivers, signatures,
Slack payloads, storms, rate limits and escalation, counted in the metrics."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiops_action.notify.config import parse_config
from aiops_action.notify.delivery import ChannelSender, RetryPolicy
from aiops_action.notify.dispatch import Notifications
from aiops_action.notify.messages import Notification, new_incident
from aiops_action.notify.webhook import verify_signature
from aiops_action.settings import ActionSettings
from aiops_common.broker.addresses import free_port
from aiops_common.schemas.incidents import (
    IncidentMember,
    IncidentRecord,
    IncidentSeverity,
    IncidentStatus,
    JoinReason,
    MemberKind,
)
from aiops_common.testing.eventually import eventually
from prometheus_client import REGISTRY, generate_latest

pytestmark = pytest.mark.functional

SECRET = "receiver-secret"
FAST = RetryPolicy(base_s=0.01, max_s=0.05)
T0 = datetime(2026, 3, 1, 10, 40, tzinfo=UTC)


class Receiver:
    """A webhook receiver: answers each attempt with the next scripted status (then ``default``), records the
    bodies it accepted, checks signatures, and can hold every request until ``gate`` opens."""

    def __init__(self, statuses: list[int], default: int, gate: asyncio.Event | None) -> None:
        self.statuses = statuses
        self.default = default
        self.gate = gate
        self.attempts = 0
        self.accepted: list[dict[str, object]] = []
        self.signed: list[bool] = []
        self.content_types: list[str] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.attempts += 1
        if self.gate is not None:
            await self.gate.wait()
        self.signed.append(verify_signature(SECRET, body, request.headers))
        status = self.statuses.pop(0) if self.statuses else self.default
        if status != 200:
            return web.Response(status=status, headers={"Retry-After": "0"} if status == 429 else {})
        self.accepted.append(json.loads(body))
        self.content_types.append(request.headers.get("Content-Type", ""))
        return web.Response(text="ok")


MakeReceiver = Callable[..., Awaitable[Receiver]]


@pytest.fixture
async def receiver() -> AsyncIterator[MakeReceiver]:
    servers: list[tuple[TestServer, Receiver]] = []

    async def make(statuses: list[int] | None = None, default: int = 200, slow: bool = False) -> Receiver:
        r = Receiver(list(statuses or []), default, asyncio.Event() if slow else None)
        app = web.Application()
        app.router.add_post("/hook", r.handle)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        r.url = str(server.make_url("/hook"))
        servers.append((server, r))
        return r

    yield make
    for server, r in servers:
        if r.gate is not None:
            r.gate.set()
        await server.close()


def count(channel: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("aiops_notify_deliveries_total", {"channel": channel, "outcome": outcome}) or 0.0


def name(prefix: str) -> str:
    """Channels are metric labels: a fresh name per test keeps the counters of tests apart."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def incident(
    n: int = 0,
    service: str = "payment",
    status: IncidentStatus = IncidentStatus.OPEN,
    revision: int = 1,
) -> IncidentRecord:
    member = IncidentMember(
        fingerprint=f"fp-{n}",
        kind=MemberKind.ALERT,
        name="HighLatency",
        service=service,
        started_at=T0,
        lead=True,
        reason=JoinReason(rule="seed"),
        joined_at=T0,
    )
    return IncidentRecord(
        id=f"inc-{n}",
        revision=revision,
        title=f"{service}: HighLatency",
        severity=IncidentSeverity.CRITICAL,
        status=status,
        services=[service],
        started_at=T0,
        updated_at=T0,
        members=[member],
    )


def webhook_channel(channel: str, url: str, extra: str = "") -> str:
    return f"{{name: {channel}, kind: webhook, url: '{url}', secret: {SECRET}, max_attempts: 3{extra}}}"


def one_channel(channel_yaml: str, channel: str, tail: str = "") -> str:
    return f"channels: [{channel_yaml}]\nroutes: [{{channels: [{channel}]}}]\n{tail}"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_fails_twice_then_succeeds_signed_and_counted(receiver: MakeReceiver) -> None:
    r = await receiver(statuses=[503, 429])
    ch = name("hook")
    async with Notifications(parse_config(one_channel(webhook_channel(ch, r.url), ch)), retry=FAST) as notify:
        assert notify.publish(new_incident(incident(), ui_url="http://ui")) == [ch]
        await eventually(lambda: r.accepted, timeout=20, what="the third attempt accepted")
    assert r.attempts == 3
    assert r.signed == [True, True, True]  # each attempt signed afresh
    assert r.accepted[0]["incident_id"] == "inc-0" and r.accepted[0]["kind"] == "incident"
    assert (count(ch, "sent"), count(ch, "retried"), count(ch, "failed")) == (1, 2, 0)
    metrics = generate_latest(REGISTRY).decode()
    assert f'aiops_notify_deliveries_total{{channel="{ch}",outcome="sent"}} 1.0' in metrics


async def test_a_receiver_that_always_fails_is_given_up_and_counted(receiver: MakeReceiver) -> None:
    r = await receiver(default=500)
    ch, down = name("broken"), name("down")
    nobody = f"http://127.0.0.1:{free_port()}/hook"  # connection refused: a network error, retried too
    text = (
        f"channels: [{webhook_channel(ch, r.url)}, {webhook_channel(down, nobody)}]\n"
        f"routes: [{{channels: [{ch}, {down}]}}]"
    )
    async with Notifications(parse_config(text), retry=FAST) as notify:
        notify.publish(new_incident(incident(), ui_url="http://ui"))
        await eventually(lambda: count(ch, "failed") == 1 and count(down, "failed") == 1, timeout=20, what="give-ups")
    assert r.attempts == 3 and r.accepted == []
    for channel in (ch, down):
        assert (count(channel, "sent"), count(channel, "retried"), count(channel, "failed")) == (0, 2, 1)


async def test_a_refusal_is_not_retried(receiver: MakeReceiver) -> None:
    r = await receiver(default=400)
    ch = name("refuses")
    async with Notifications(parse_config(one_channel(webhook_channel(ch, r.url), ch)), retry=FAST) as notify:
        notify.publish(new_incident(incident(), ui_url="http://ui"))
        await eventually(lambda: count(ch, "failed") == 1, timeout=20, what="the refusal counted")
    assert r.attempts == 1 and count(ch, "retried") == 0


async def test_a_slow_receiver_never_blocks_publishing_and_a_full_queue_drops_the_oldest(
    receiver: MakeReceiver,
) -> None:
    r = await receiver(slow=True)
    ch = name("slow")
    config = parse_config(one_channel(webhook_channel(ch, r.url, ", queue_size: 2"), ch))
    async with Notifications(config, retry=FAST) as notify:
        notify.publish(new_incident(incident(0), ui_url="http://ui"))
        await eventually(lambda: r.attempts == 1, timeout=20, what="the first message held by the receiver")
        # publish is plain synchronous code: these return while the receiver still holds the first request
        for n in range(1, 5):
            assert notify.publish(new_incident(incident(n), ui_url="http://ui")) == [ch]
        sender = notify.senders[ch]
        assert sender.pending == 3 and count(ch, "dropped") == 2
        assert r.gate is not None
        r.gate.set()
        await eventually(lambda: len(r.accepted) == 3, timeout=20, what="the queue delivered")
    assert [a["incident_id"] for a in r.accepted] == ["inc-0", "inc-3", "inc-4"]
    assert count(ch, "sent") == 3


async def test_slack_storm_is_one_message_then_one_update_per_interval(receiver: MakeReceiver) -> None:
    r = await receiver()
    ch = name("slack")
    clock = Clock()
    text = f"channels: [{{name: {ch}, kind: slack, url: '{r.url}'}}]\nroutes: [{{channels: [{ch}]}}]\n"
    config = parse_config(text + "group_interval_s: 60")
    evil = "<!channel> <https://evil|click>"
    notify = Notifications(config, clock=clock, retry=FAST)
    await notify.start(ticker=False)
    try:
        # 1,000 alerts joining one incident: 1,000 revisions of it
        for rev in range(1, 1001):
            notify.publish(new_incident(incident(service=evil, revision=rev), ui_url="http://ui"))
            clock.now += 0.01
        await eventually(lambda: r.accepted, timeout=20, what="the new-incident message")
        clock.now += 60
        notify.tick()
        await eventually(lambda: len(r.accepted) == 2, timeout=20, what="one update")
        notify.tick()  # nothing more waits
        await eventually(lambda: notify.senders[ch].pending == 0, timeout=20, what="an idle sender")
    finally:
        await notify.stop()
    assert count(ch, "sent") == 2 and len(r.accepted) == 2
    first, update = r.accepted
    assert r.content_types == ["application/json", "application/json"]
    header = first["attachments"][0]["blocks"][0]["text"]["text"]  # type: ignore[index]
    assert header == "[CRITICAL] &lt;!channel&gt; &lt;https://evil|click&gt;: HighLatency"
    assert "<!channel>" not in json.dumps(first) and "<https://evil" not in json.dumps(first)
    assert update["attachments"][0]["blocks"][0]["text"]["text"].startswith("Update: ")  # type: ignore[index]


async def test_rate_limit_holds_the_excess_and_sends_one_digest(receiver: MakeReceiver) -> None:
    r = await receiver()
    ch = name("limited")
    clock = Clock()
    config = parse_config(one_channel(webhook_channel(ch, r.url, ", rate_limit: 2/minute"), ch))
    notify = Notifications(config, clock=clock, retry=FAST)
    await notify.start(ticker=False)
    try:
        sent = [notify.publish(new_incident(incident(n), ui_url="http://ui")) for n in range(5)]
        assert sent == [[ch], [ch], [], [], []]
        await eventually(lambda: len(r.accepted) == 2, timeout=20, what="two within the limit")
        notify.tick()  # the window is still full: no digest yet
        clock.now += 60
        notify.tick()
        await eventually(lambda: len(r.accepted) == 3, timeout=20, what="the digest")
    finally:
        await notify.stop()
    digest = r.accepted[2]
    assert digest["kind"] == "digest"
    assert digest["title"] == "3 notifications held back by this channel's rate limit"
    assert digest["text"] == "\n".join(["critical: payment: HighLatency"] * 3)
    assert count(ch, "digested") == 3 and count(ch, "sent") == 3


async def test_unacknowledged_incidents_escalate_then_page_and_acknowledged_ones_stop(receiver: MakeReceiver) -> None:
    slack, team, pager = await receiver(), await receiver(), await receiver()
    ch_slack, ch_team, ch_pager = name("slack"), name("team"), name("pager")
    clock = Clock()
    config = parse_config(
        f"channels: [{{name: {ch_slack}, kind: slack, url: '{slack.url}'}}, {webhook_channel(ch_team, team.url)},"
        f" {webhook_channel(ch_pager, pager.url)}]\n"
        f"routes: [{{channels: [{ch_slack}]}}]\n"
        f"escalation: [{{after_s: 300, channels: [{ch_team}]}}, {{after_s: 900, channels: [{ch_pager}]}}]\n"
    )
    notify = Notifications(config, clock=clock, retry=FAST)
    await notify.start(ticker=False)
    try:
        notify.publish(new_incident(incident(1), ui_url="http://ui"))
        notify.publish(new_incident(incident(2), ui_url="http://ui"))
        clock.now += 299
        assert notify.tick() == []
        clock.now += 1
        assert [(d.incident_id, d.step) for d in notify.tick()] == [("inc-1", 0), ("inc-2", 0)]
        await eventually(lambda: len(team.accepted) == 2, timeout=20, what="the team escalation")
        assert notify.acknowledge("inc-1")
        # an incident update that is no longer open stops it as well
        notify.publish(new_incident(incident(3), ui_url="http://ui"))
        notify.publish(new_incident(incident(3, status=IncidentStatus.ACKNOWLEDGED, revision=2), ui_url="http://ui"))
        clock.now += 600
        due = notify.tick()
        assert [(d.incident_id, d.step, d.final) for d in due] == [("inc-2", 1, True)]
        await eventually(lambda: pager.accepted, timeout=20, what="the page")
    finally:
        await notify.stop()
    assert [p["incident_id"] for p in pager.accepted] == ["inc-2"]
    assert pager.accepted[0]["kind"] == "escalation" and pager.signed == [True]
    assert str(pager.accepted[0]["title"]).startswith("Paging: unacknowledged for 15 min")
    assert {t["incident_id"] for t in team.accepted} == {"inc-1", "inc-2"}


async def test_settings_name_the_config_file(tmp_path: Path) -> None:
    assert Notifications.from_settings(ActionSettings(action_notify_file=None)) is None
    path = tmp_path / "notify.yaml"
    path.write_text(one_channel("{name: ops, kind: slack, url: 'http://127.0.0.1:9/x'}", "ops"))
    notify = Notifications.from_settings(ActionSettings(action_notify_file=path))
    assert notify is not None and list(notify.senders) == ["ops"]


async def test_a_resolved_incident_is_sent_at_once_and_stops_escalating(receiver: MakeReceiver) -> None:
    r, pager = await receiver(), await receiver()
    ch, ch_pager = name("hook"), name("pager")
    clock = Clock()
    config = parse_config(
        f"channels: [{webhook_channel(ch, r.url)}, {webhook_channel(ch_pager, pager.url)}]\n"
        f"routes: [{{channels: [{ch}]}}]\nescalation: [{{after_s: 300, channels: [{ch_pager}]}}]\n"
    )
    notify = Notifications(config, clock=clock, retry=FAST)
    await notify.start(ticker=False)
    try:
        notify.publish(new_incident(incident(), ui_url="http://ui"))
        assert notify.publish(new_incident(incident(revision=2), ui_url="http://ui")) == []  # grouped
        resolved = incident(status=IncidentStatus.RESOLVED, revision=3)
        assert notify.publish(new_incident(resolved, ui_url="http://ui")) == [ch]  # not held by grouping
        assert notify.escalation.tracked == []
        clock.now += 1000
        assert notify.tick() == []  # the grouped revision 2 was superseded, nothing escalates
        await eventually(lambda: len(r.accepted) == 2, timeout=20, what="opened and resolved")
    finally:
        await notify.stop()
    assert [(a["status"], a["update"]) for a in r.accepted] == [("open", False), ("resolved", True)]
    assert pager.attempts == 0


async def test_a_message_that_cannot_be_rendered_is_counted_and_the_channel_goes_on(receiver: MakeReceiver) -> None:
    r = await receiver()
    ch = name("render")

    def render(n: Notification) -> tuple[bytes, dict[str, str]]:
        if n.incident_id == "inc-0":
            raise ValueError("cannot render")
        return json.dumps({"incident_id": n.incident_id}).encode(), {"Content-Type": "application/json"}

    sender = ChannelSender(ch, r.url, render, retry=FAST)
    sender.start()
    try:
        sender.enqueue(new_incident(incident(0), ui_url="http://ui"))
        sender.enqueue(new_incident(incident(1), ui_url="http://ui"))
        await eventually(lambda: r.accepted, timeout=20, what="the second message")
    finally:
        await sender.stop()
    assert r.accepted == [{"incident_id": "inc-1"}]
    assert (count(ch, "failed"), count(ch, "sent")) == (1, 1)


async def test_the_ticker_escalates_without_being_called(receiver: MakeReceiver) -> None:
    pager = await receiver()
    ch = name("pager")
    clock = Clock()
    config = parse_config(
        f"channels: [{webhook_channel(ch, pager.url)}]\nescalation: [{{after_s: 300, channels: [{ch}]}}]\n"
    )
    async with Notifications(config, clock=clock, retry=FAST, tick_s=0.05) as notify:
        assert notify.publish(new_incident(incident(), ui_url="http://ui")) == []  # no route: escalation only
        clock.now += 300
        await eventually(lambda: pager.accepted, timeout=20, what="the page from the ticker")
    assert pager.accepted[0]["kind"] == "escalation"
