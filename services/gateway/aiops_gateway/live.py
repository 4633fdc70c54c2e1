"""The live feed behind ``GET /api/v1/events``: incidents, RCA results and runbook executions as they are published.

Every gateway replica reads the topics itself (no consumer group: each needs every record), from their end
when it starts, and fans each record out to the connected clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiops_common.broker.addresses import bootstrap_servers, broker_accepts_connections
from aiops_common.schemas import ExecutionRecord, IncidentRecord, RcaResult, SchemaError, decode_envelope
from aiops_common.schemas.incidents import IncidentSeverity, IncidentStatus
from aiops_common.topics import Topics
from prometheus_client import Counter, Gauge
from pydantic import BaseModel, ConfigDict, ValidationError

from aiops_gateway.settings import GatewaySettings

__all__ = ["CauseBrief", "ExecutionEvent", "IncidentEvent", "LiveEvent", "LiveFeed", "RcaEvent", "Subscription"]

log = structlog.get_logger(__name__)

EVENTS = Counter("aiops_gateway_live_events_total", "Records the live feed read and fanned out, by kind", ["kind"])
DROPPED = Counter(
    "aiops_gateway_live_dropped_total", "Live events a slow client lost because its queue was full (it is told)"
)
UNDECODABLE = Counter("aiops_gateway_live_undecodable_total", "Records on the live topics that could not be read")
SUBSCRIBERS = Gauge("aiops_gateway_live_subscribers", "Clients connected to the live feed of this replica")
CONNECTED = Gauge("aiops_gateway_live_connected", "1 while this replica's live feed follows the broker")

QUEUE_LIMIT = 500
"""Events kept for a client that has not read them yet; beyond that its oldest are dropped."""
TOP_CAUSES = 3
LIVENESS_S = 5.0
"""How often a following feed checks that the broker still answers."""
_BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


class CauseBrief(BaseModel):
    """A ranked cause as the list and the live feed show it."""

    model_config = ConfigDict(extra="ignore")

    service: str
    probability: float
    kind: str = "unknown"
    rule: str = ""


class IncidentEvent(BaseModel):
    """``event: incident``: an incident as of its latest change (the fields of the incidents list)."""

    model_config = ConfigDict(extra="ignore")

    id: str
    revision: int
    title: str
    summary: str = ""
    status: IncidentStatus
    severity: IncidentSeverity
    services: list[str]
    started_at: datetime
    updated_at: datetime
    resolved_at: datetime | None = None
    member_count: int
    change_count: int
    merged_into: str | None = None
    top_cause: CauseBrief | None = None

    @classmethod
    def from_record(cls, value: bytes) -> IncidentEvent:
        """Read from a published incident without validating every member: a storm's incident has thousands."""
        _, body = decode_envelope(value, IncidentRecord.schema_name, (IncidentRecord.schema_version,))
        members = body.get("members")
        changes = body.get("changes")
        rca = body.get("rca")
        causes = rca.get("causes") if isinstance(rca, dict) else None
        try:
            return cls.model_validate(
                {
                    **{k: v for k, v in body.items() if k not in ("members", "changes", "history", "merged", "rca")},
                    "member_count": len(members) if isinstance(members, list) else 0,
                    "change_count": len(changes) if isinstance(changes, list) else 0,
                    "top_cause": causes[0] if isinstance(causes, list) and causes else None,
                }
            )
        except ValidationError as exc:
            raise SchemaError(f"malformed {IncidentRecord.schema_name}: {exc}") from exc


class RcaEvent(BaseModel):
    """``event: rca``: a new analysis of an incident revision, its best causes first."""

    id: str
    incident_id: str
    revision: int
    status: str
    summary: str
    analyzed_at: datetime
    causes: list[CauseBrief]

    @classmethod
    def from_record(cls, value: bytes) -> RcaEvent:
        result = RcaResult.decode(value)
        return cls(
            id=result.id,
            incident_id=result.incident_id,
            revision=result.incident_revision,
            status=result.status.value,
            summary=result.summary,
            analyzed_at=result.analyzed_at,
            causes=[
                CauseBrief(service=c.service, probability=c.probability, kind=c.kind.value, rule=c.rule)
                for c in result.causes[:TOP_CAUSES]
            ],
        )


class ExecutionEvent(BaseModel):
    """``event: execution``: a runbook execution in a new state (the whole record: ``GET /executions/{id}``)."""

    id: str
    incident_id: str
    runbook_id: str
    title: str
    status: str
    risk: str
    attempt: int
    required_approvals: int
    approvals: int
    """Approvals so far."""
    requested_by: str
    updated_at: datetime
    summary: str

    @classmethod
    def from_record(cls, value: bytes) -> ExecutionEvent:
        record = ExecutionRecord.decode(value)
        return cls(
            id=record.id,
            incident_id=record.incident_id,
            runbook_id=record.runbook_id,
            title=record.title,
            status=record.status.value,
            risk=record.risk,
            attempt=record.attempt,
            required_approvals=record.required_approvals,
            approvals=len(record.approvers()),
            requested_by=record.requested_by,
            updated_at=record.updated_at,
            summary=record.summary(),
        )


@dataclass(frozen=True, slots=True)
class LiveEvent:
    kind: str
    """``incident``, ``rca`` or ``execution``: the SSE event name."""
    data: str
    """The event as JSON, made once for every client."""


class Subscription:
    """One client's queue: bounded, so a slow client loses its oldest events (and is told how many), never
    holding up the feed or the other clients."""

    def __init__(self, limit: int = QUEUE_LIMIT) -> None:
        self._events: deque[LiveEvent] = deque(maxlen=limit)
        self._wake = asyncio.Event()
        self._dropped = 0
        self.closed = False

    def put(self, event: LiveEvent) -> None:
        if len(self._events) == self._events.maxlen:
            self._dropped += 1
            DROPPED.inc()
        self._events.append(event)
        self._wake.set()

    def close(self) -> None:
        self.closed = True
        self._wake.set()

    async def get(self, wait_s: float) -> tuple[list[LiveEvent], int]:
        """The events queued (waiting up to ``wait_s`` for one) and how many were dropped since the last call."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while not self._events and not self._dropped and not self.closed:
            left = deadline - loop.time()
            if left <= 0:
                break
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), left)
        events = list(self._events)
        self._events.clear()
        dropped, self._dropped = self._dropped, 0
        return events, dropped


async def _stop(consumer: AIOKafkaConsumer) -> None:
    """Stop a consumer whose broker may be gone: aiokafka then fails, or lets its fetcher's cancellation out."""
    try:
        await consumer.stop()
    except (Exception, asyncio.CancelledError):
        task = asyncio.current_task()
        if task is not None and task.cancelling():  # we are being stopped ourselves: let that through
            raise


class LiveFeed:
    """Follows ``incidents``, ``rca.results`` and ``actions`` for the clients of ``/api/v1/events``.

    It runs as a task of its own: a broker that is down when the gateway starts, or goes away later, is
    retried with backoff while the API serves everything else. Once it follows again it starts from the end
    and sends every client a ``resync`` event: what was published meanwhile is in the document store, which
    clients read again (a broker that restarted without storage has no history to resume from).
    """

    def __init__(self, settings: GatewaySettings, broker_url: str, queue_limit: int = QUEUE_LIMIT) -> None:
        self.settings = settings
        self.broker_url = broker_url
        self.queue_limit = queue_limit
        self._subscriptions: set[Subscription] = set()
        self._followed_before = False
        self._task: asyncio.Task[None] | None = None
        self._connected = False
        self._followed = False
        self.failures = 0
        """Times following the broker failed (it is retried each time)."""
        self.listeners: list[Callable[[LiveEvent], None]] = []
        """Called with every event before clients get it (the answer cache empties itself)."""
        self._readers: dict[str, tuple[str, Callable[[bytes], BaseModel]]] = {
            Topics.INCIDENTS.full_name(settings.topic_prefix): ("incident", IncidentEvent.from_record),
            Topics.RCA_RESULTS.full_name(settings.topic_prefix): ("rca", RcaEvent.from_record),
            Topics.ACTIONS.full_name(settings.topic_prefix): ("execution", ExecutionEvent.from_record),
        }

    @property
    def connected(self) -> bool:
        """True once the feed follows the topics (positioned at their end), until the broker goes away."""
        return self._connected

    @property
    def subscribers(self) -> int:
        return len(self._subscriptions)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="gateway-live-feed")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for subscription in list(self._subscriptions):
            self.unsubscribe(subscription)

    def subscribe(self) -> Subscription:
        subscription = Subscription(self.queue_limit)
        self._subscriptions.add(subscription)
        SUBSCRIBERS.set(len(self._subscriptions))
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        subscription.close()
        self._subscriptions.discard(subscription)
        SUBSCRIBERS.set(len(self._subscriptions))

    def fan_out(self, event: LiveEvent) -> None:
        for listener in self.listeners:
            listener(event)
        for subscription in self._subscriptions:
            subscription.put(event)

    def take(self, topic: str, value: bytes | None) -> None:
        """Decode one record and hand it to every client; a record that cannot be read is counted and skipped."""
        reader = self._readers.get(topic)
        if reader is None or value is None:
            return
        kind, decode = reader
        try:
            event = decode(value)
        except SchemaError as exc:
            UNDECODABLE.inc()
            log.warning("live feed skipped an unreadable record", topic=topic, error=str(exc))
            return
        EVENTS.labels(kind).inc()
        self.fan_out(LiveEvent(kind, event.model_dump_json()))

    async def _run(self) -> None:
        attempt = 0
        while True:
            self._followed = False
            try:
                await self._follow()
            except (Exception, asyncio.CancelledError) as exc:  # the broker is down or refused us: we retry
                task = asyncio.current_task()
                if isinstance(exc, asyncio.CancelledError) and task is not None and task.cancelling():
                    raise  # stop() asked; a cancellation escaping aiokafka's own tasks is a failure like any
                self.failures += 1
                attempt = 0 if self._followed else attempt  # a feed that ran before starts its backoff again
                wait_s = _BACKOFF_S[min(attempt, len(_BACKOFF_S) - 1)]
                log.warning(
                    "live feed cannot follow the broker; retrying",
                    error=f"{type(exc).__name__}: {exc}",
                    retry_in_s=wait_s,
                )
                attempt += 1
                await asyncio.sleep(wait_s)

    async def _follow(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers(self.broker_url),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="latest",
            fetch_max_wait_ms=self.settings.consumer_fetch_wait_ms,
            request_timeout_ms=int(max(self.settings.publish_timeout_s, 5.0) * 1000),
        )
        try:
            await asyncio.wait_for(consumer.start(), max(self.settings.publish_timeout_s, 5.0))
            partitions = await self._partitions(consumer)
            consumer.assign(partitions)
            await consumer.seek_to_end(*partitions)
            for tp in partitions:  # seek_to_end is lazy: resolve it now, so what is published next is seen
                await consumer.position(tp)
            self._connected = self._followed = True
            CONNECTED.set(1)
            log.info("live feed following", topics=sorted(self._readers))
            if self._followed_before:
                self.fan_out(LiveEvent("resync", json.dumps({"reason": "the gateway reconnected to the broker"})))
            self._followed_before = True
            loop = asyncio.get_running_loop()
            checked_at = loop.time()
            while True:
                batch = await consumer.getmany(*partitions, timeout_ms=1000)
                for tp, records in batch.items():
                    for record in records:
                        self.take(tp.topic, record.value)
                # aiokafka reconnects by itself and says nothing, also to a broker that came back empty and
                # would never hand us the offsets we wait at: a broker that stops answering ends this follow.
                if loop.time() - checked_at >= LIVENESS_S:
                    if not await broker_accepts_connections(self.broker_url, timeout_s=2.0):
                        raise ConnectionError(f"broker {self.broker_url} stopped answering")
                    checked_at = loop.time()
        finally:
            self._connected = False
            CONNECTED.set(0)
            await _stop(consumer)

    async def _partitions(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        await consumer._client.force_metadata_update()  # metadata is lazy in aiokafka
        partitions: list[TopicPartition] = []
        missing: list[str] = []
        for topic in sorted(self._readers):
            found = consumer.partitions_for_topic(topic)
            if not found:
                missing.append(topic)
            partitions.extend(TopicPartition(topic, p) for p in sorted(found or ()))
        if missing:
            raise LookupError(f"topics {', '.join(missing)} do not exist yet")
        return partitions
