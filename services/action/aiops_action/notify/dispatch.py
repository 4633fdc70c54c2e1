"""The notifications API the notifier agent calls: route, group, rate-limit, enqueue; escalate on a timer."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import replace

import httpx
import structlog
from aiops_common.schemas.incidents import IncidentSeverity, IncidentStatus

from aiops_action.notify.config import ChannelConfig, NotifyConfig, load_config
from aiops_action.notify.delivery import DELIVERIES, ChannelSender, Render, RetryPolicy
from aiops_action.notify.escalation import EscalationChecker, EscalationDue
from aiops_action.notify.messages import EventKind, Notification
from aiops_action.notify.routing import Grouper, RateLimiter, Router
from aiops_action.notify.slack import slack_body
from aiops_action.notify.webhook import webhook_body
from aiops_action.settings import ActionSettings

__all__ = ["Notifications"]

log = structlog.get_logger(__name__)


def _render(channel: ChannelConfig) -> Render:
    if channel.kind == "slack":
        return slack_body
    secret = channel.secret.get_secret_value() if channel.secret else ""
    return lambda n: webhook_body(n, secret)


class Notifications:
    """Channels, routes, grouping, rate limits and escalation of one config.

    :meth:`publish` is synchronous and cheap (no I/O): it never holds up the caller's pipeline. Sending happens
    in one task per channel between :meth:`start` and :meth:`stop`. :meth:`tick` sends grouped updates,
    digests and due escalations; :meth:`start` runs it every ``tick_s``.
    """

    def __init__(
        self,
        config: NotifyConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        retry: RetryPolicy | None = None,
        client: httpx.AsyncClient | None = None,
        tick_s: float = 1.0,
    ) -> None:
        self.config = config
        self.clock = clock
        self.tick_s = tick_s
        self.router = Router(config)
        self.grouper = Grouper(config.group_interval_s)
        self.escalation = EscalationChecker(config.escalation_steps, clock)
        self.senders = {
            c.name: ChannelSender(
                c.name,
                c.url,
                _render(c),
                queue_size=c.queue_size,
                timeout_s=c.timeout_s,
                retry=replace(retry or RetryPolicy(), max_attempts=c.max_attempts),
                client=client,
            )
            for c in config.channels
        }
        self.limits = {c.name: RateLimiter(c.rate_limit) for c in config.channels if c.rate_limit is not None}
        self._latest: dict[str, Notification] = {}
        self._ticker: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(
        cls, settings: ActionSettings, *, clock: Callable[[], float] = time.monotonic
    ) -> Notifications | None:
        """None when ``action_notify_file`` is unset (no notifications); a bad file raises NotifyConfigError."""
        if settings.action_notify_file is None:
            return None
        return cls(load_config(settings.action_notify_file), clock=clock)

    async def start(self, ticker: bool = True) -> None:
        for sender in self.senders.values():
            sender.start()
        if ticker and self._ticker is None:
            self._ticker = asyncio.create_task(self._tick_forever(), name="notify-tick")

    async def stop(self, drain_s: float = 5.0) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        await asyncio.gather(*(s.stop(drain_s) for s in self.senders.values()))

    async def __aenter__(self) -> Notifications:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            try:
                self.tick()
            except Exception:  # a bad tick must not end escalation for good
                log.exception("notify_tick_failed")

    def publish(self, n: Notification) -> list[str]:
        """Route, group and rate-limit ``n`` and enqueue it; returns the channels it was queued for now (empty
        when grouping or a rate limit holds it). Returns at once.

        An incident message starts its escalation clock; one whose status is no longer ``open`` (acknowledged,
        mitigated) stops it; a resolved one is sent at once and forgets the incident (:meth:`close`).
        """
        now = self.clock()
        if n.kind is EventKind.INCIDENT:
            if n.status is IncidentStatus.RESOLVED:
                # the last word on an incident goes out at once, and its grouping and escalation end with it
                self.close(n.incident_id)
                return self._send(replace(n, update=True), now)
            self._latest[n.incident_id] = n
            if n.status is IncidentStatus.OPEN:
                self.escalation.track(n.incident_id)
            else:
                self.escalation.acknowledge(n.incident_id)
        ready = self.grouper.offer(n, now)
        return self._send(ready, now) if ready is not None else []

    def acknowledge(self, incident_id: str) -> bool:
        """A person acknowledged it: escalation stops. True when it was escalating."""
        return self.escalation.acknowledge(incident_id)

    def escalate_now(self, incident_id: str, reason: str, about: Notification | None = None) -> list[str]:
        """Escalate at once (a failed or rolled-back execution, an approval nobody gave in time): an ESCALATION
        message to the first escalation step's channels, or to the channels ``about`` routes to when no
        escalation is configured. It skips grouping and rate limits. Returns the channels it was queued for.

        ``about`` is what the message is built from (an execution's result); without it, the incident's latest
        message. Neither known: nothing is sent (empty list).
        """
        base = about if about is not None else self._latest.get(incident_id)
        if base is None:
            log.warning("escalation_unsent", incident_id=incident_id, reason=reason, why="nothing known about it")
            return []
        steps = self.config.escalation_steps
        n = replace(
            base,
            kind=EventKind.ESCALATION,
            incident_id=incident_id,
            title=f"Escalating: {reason}",
            text="\n".join(t for t in (reason, base.text) if t),
            # a key of its own: a second escalation of the incident is a new message, not an update of this one
            group_key=f"now-{base.kind.value}-{base.group_key}",
            update=False,
            link_label="Acknowledge in the UI",
        )
        channels = list(steps[0].channels) if steps else self.router.channels(n)
        for name in channels:
            self.senders[name].enqueue(n)
        log.info("incident_escalated_now", incident_id=incident_id, reason=reason, channels=channels)
        return channels

    def close(self, incident_id: str) -> None:
        """Forget a resolved incident (escalation, groups, its latest message)."""
        self.escalation.acknowledge(incident_id)
        self.grouper.forget(incident_id)
        self._latest.pop(incident_id, None)

    def tick(self) -> list[EscalationDue]:
        """Send grouped updates and digests that are due, and due escalation steps; returns those steps."""
        now = self.clock()
        for n in self.grouper.due(now):
            self._send(n, now)
        for name, limiter in self.limits.items():
            self._send_digest(name, limiter, now)
        due = self.escalation.check()
        for step in due:
            self._escalate(step)
        return due

    def _send(self, n: Notification, now: float) -> list[str]:
        sent = []
        for name in self.router.channels(n):
            limiter = self.limits.get(name)
            if limiter is not None and not limiter.admit(n, now):
                continue
            self.senders[name].enqueue(n)
            sent.append(name)
        return sent

    def _send_digest(self, name: str, limiter: RateLimiter, now: float) -> None:
        ready = limiter.digest(now)
        if ready is None:
            return
        held, over = ready
        DELIVERIES.labels(name, "digested").inc(len(held))
        if over:
            DELIVERIES.labels(name, "digest_dropped").inc(over)
        worst = max((h.severity for h in held), key=lambda s: s.rank) if held else None
        total = len(held) + over
        lines = [f"{h.severity.value}: {h.title}" for h in held[:20]]
        if total > len(lines):
            lines.append(f"and {total - len(lines)} more")
        first = held[0] if held else None
        self.senders[name].enqueue(
            Notification(
                kind=EventKind.DIGEST,
                incident_id=first.incident_id if first else "",
                title=f"{total} notifications held back by this channel's rate limit",
                severity=worst or IncidentSeverity.WARNING,
                text="\n".join(lines),
                group_key=f"digest-{now}",
            )
        )

    def _escalate(self, step: EscalationDue) -> None:
        latest = self._latest.get(step.incident_id)
        if latest is None:
            return
        minutes = step.unacknowledged_s / 60
        what = "Paging" if step.final else "Escalating"
        n = replace(
            latest,
            kind=EventKind.ESCALATION,
            title=f"{what}: unacknowledged for {minutes:.0f} min: {latest.title}",
            group_key=str(step.step),
            update=False,
            link_label="Acknowledge in the UI",
        )
        # escalations skip grouping and rate limits: a page held back for a digest is no page
        for name in step.channels:
            self.senders[name].enqueue(n)
        log.info("incident_escalated", incident_id=step.incident_id, step=step.step, channels=list(step.channels))
