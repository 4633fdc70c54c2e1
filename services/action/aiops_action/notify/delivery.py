"""Delivery to one channel: a bounded queue and a sender task, retries with backoff, counted in ``/metrics``."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import structlog
from aiops_common.observability import LogRateLimit
from prometheus_client import Counter, Gauge

from aiops_action.notify.messages import Notification

__all__ = [
    "DELIVERIES",
    "QUEUED",
    "ChannelSender",
    "Render",
    "RetryPolicy",
    "parse_retry_after",
    "retry_delay",
]

log = structlog.get_logger(__name__)

DELIVERIES = Counter(
    "aiops_notify_deliveries_total",
    "Notifications by channel and outcome: sent, retried (one per retry), failed (gave up or refused), "
    "dropped (queue full, oldest dropped), digested (held by the rate limit and sent in a digest), "
    "digest_dropped (held beyond the digest's size)",
    ["channel", "outcome"],
)
QUEUED = Gauge("aiops_notify_queued", "Notifications waiting to be sent, by channel", ["channel"])

Render = Callable[[Notification], tuple[bytes, dict[str, str]]]
"""A channel's format: the body and headers of one notification (called per attempt: a fresh signature)."""


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_s: float = 0.5
    max_s: float = 60.0
    retry_after_max_s: float = 300.0
    """A receiver's Retry-After is honoured up to this long."""


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date); None when absent or unreadable.

    >>> parse_retry_after("3"), parse_retry_after(None), parse_retry_after("soon")
    (3.0, None, None)
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def retry_delay(
    attempt: int, policy: RetryPolicy, retry_after: float | None = None, rng: random.Random | None = None
) -> float:
    """Wait before attempt ``attempt + 1``: exponential from ``base_s`` with jitter (50-100 %), capped at
    ``max_s``; never shorter than the receiver's Retry-After (itself capped at ``retry_after_max_s``).
    """
    ceiling = min(policy.max_s, policy.base_s * 2.0 ** (attempt - 1))
    jitter = rng.random() if rng is not None else random.random()
    delay = ceiling * (0.5 + 0.5 * jitter)
    if retry_after is not None:
        delay = max(delay, min(retry_after, policy.retry_after_max_s))
    return delay


class _Retry(Exception):
    def __init__(self, why: str, retry_after: float | None = None) -> None:
        super().__init__(why)
        self.retry_after = retry_after


class _Refused(Exception):
    pass


class ChannelSender:
    """One channel's queue and sender task. :meth:`enqueue` never waits: the pipeline is never held up by a
    slow or failing receiver; when the queue is full the oldest message is dropped and counted.
    """

    def __init__(
        self,
        name: str,
        url: str,
        render: Render,
        *,
        queue_size: int = 1000,
        timeout_s: float = 10.0,
        retry: RetryPolicy | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.name = name
        self.url = url
        self.render = render
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy()
        self._queue: deque[Notification] = deque()
        self._size = queue_size
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._client = client
        self._own_client = client is None
        self._task: asyncio.Task[None] | None = None
        self._busy = False
        self._drop_log = LogRateLimit(interval_s=10.0)

    @property
    def pending(self) -> int:
        """Queued plus the one being sent."""
        return len(self._queue) + int(self._busy)

    def enqueue(self, n: Notification) -> None:
        """O(1), returns at once."""
        if len(self._queue) >= self._size:
            self._queue.popleft()
            DELIVERIES.labels(self.name, "dropped").inc()
            held_back = self._drop_log(self.name)
            if held_back is not None:  # a storm drops by the thousand: one line per interval, with the count
                log.warning("notification_dropped", channel=self.name, reason="queue full", more=held_back)
        self._queue.append(n)
        self._idle.clear()
        QUEUED.labels(self.name).set(len(self._queue))
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            if self._client is None:
                self._client = httpx.AsyncClient()
            self._task = asyncio.create_task(self._run(), name=f"notify-{self.name}")

    async def stop(self, drain_s: float = 0.0) -> None:
        """Give the queue up to ``drain_s`` to empty, then stop the sender (what is left is not sent)."""
        if self._task is None:
            return
        if drain_s > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), timeout=drain_s)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _run(self) -> None:
        while True:
            if not self._queue:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            n = self._queue.popleft()
            QUEUED.labels(self.name).set(len(self._queue))
            self._busy = True
            try:
                await self._deliver(n)
            except Exception:  # one message that cannot be rendered must not end the channel's sender
                DELIVERIES.labels(self.name, "failed").inc()
                log.exception("notification_failed", channel=self.name, incident_id=n.incident_id)
            finally:
                self._busy = False

    async def _deliver(self, n: Notification) -> None:
        assert self._client is not None
        for attempt in range(1, self.retry.max_attempts + 1):
            try:
                await self._attempt(n)
            except _Retry as exc:
                if attempt == self.retry.max_attempts:
                    DELIVERIES.labels(self.name, "failed").inc()
                    log.error("notification_failed", channel=self.name, attempts=attempt, error=str(exc))
                    return
                DELIVERIES.labels(self.name, "retried").inc()
                await asyncio.sleep(retry_delay(attempt, self.retry, exc.retry_after))
            except _Refused as exc:
                DELIVERIES.labels(self.name, "failed").inc()
                log.error("notification_refused", channel=self.name, error=str(exc))
                return
            else:
                DELIVERIES.labels(self.name, "sent").inc()
                return

    async def _attempt(self, n: Notification) -> None:
        assert self._client is not None
        body, headers = self.render(n)
        try:
            response = await self._client.post(self.url, content=body, headers=headers, timeout=self.timeout_s)
        except httpx.TransportError as exc:  # connection refused, reset, timeouts: worth another try
            raise _Retry(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise _Retry(f"HTTP {response.status_code}", parse_retry_after(response.headers.get("Retry-After")))
        if response.status_code >= 400:
            # the receiver refuses this message (bad URL, bad signature): the same bytes would fail again
            raise _Refused(f"HTTP {response.status_code}: {response.text[:200]}")
