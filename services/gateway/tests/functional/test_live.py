"""The live feed: incidents and RCA results published to the broker reach SSE clients of ``/api/v1/events``."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from aiops_common.broker import EmbeddedBroker, Publisher, ensure_topics
from aiops_common.broker.publisher import Message
from aiops_common.schemas import (
    IncidentMember,
    IncidentRecord,
    IncidentSeverity,
    JoinReason,
    MemberKind,
    RankedCause,
    RcaResult,
    RcaStatus,
    rca_result_id,
)
from aiops_common.schemas.rca import CauseKind
from aiops_common.testing.eventually import eventually
from aiops_common.topics import Topics
from aiops_gateway.auth import Role
from aiops_gateway.live import LiveEvent, LiveFeed
from aiops_gateway.settings import GatewaySettings
from aiops_gateway.testing import RunningGateway

pytestmark = pytest.mark.functional

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def incident(incident_id: str, revision: int, service: str = "payment") -> IncidentRecord:
    member = IncidentMember(
        fingerprint=f"{incident_id}-m1",
        kind=MemberKind.ALERT,
        name="HighLatency",
        service=service,
        severity=IncidentSeverity.MAJOR,
        started_at=T0,
        lead=True,
        reason=JoinReason(rule="seed", text="opened the incident"),
        joined_at=T0,
    )
    return IncidentRecord(
        id=incident_id,
        revision=revision,
        title=f"{service}: HighLatency",
        severity=IncidentSeverity.MAJOR,
        services=[service],
        started_at=T0,
        updated_at=T0 + timedelta(seconds=revision),
        members=[member],
    )


class SseReader:
    """A client of the event stream: collects ``(event, data)`` pairs as they arrive."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, object]]] = []
        self.comments = 0

    async def read(self, response: httpx.Response) -> None:
        kind, data = "message", []
        async for line in response.aiter_lines():
            if line.startswith(":"):
                self.comments += 1
            elif line.startswith("event:"):
                kind = line.partition(":")[2].strip()
            elif line.startswith("data:"):
                data.append(line.partition(":")[2].strip())
            elif not line:
                if data:
                    self.events.append((kind, json.loads("\n".join(data))))
                kind, data = "message", []

    def of(self, kind: str) -> list[dict[str, object]]:
        return [d for k, d in self.events if k == kind]


@contextlib.asynccontextmanager
async def streaming(client: httpx.AsyncClient) -> AsyncIterator[tuple[httpx.Response, SseReader]]:
    reader = SseReader()
    async with client.stream("GET", "/api/v1/events", timeout=httpx.Timeout(30.0, read=None)) as response:
        task = asyncio.create_task(reader.read(response)) if response.status_code == 200 else None
        try:
            yield response, reader
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                    await task


async def test_incident_and_rca_published_reach_a_connected_client(running_gateway: RunningGateway) -> None:
    gw = running_gateway.gateway
    await eventually(lambda: gw.live.connected, timeout=60, what="the live feed following the broker")
    async with await running_gateway.client(Role.VIEWER) as client, streaming(client) as (response, reader):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        hello = await eventually(lambda: reader.of("hello"), timeout=30, what="the hello event")
        assert hello[0]["live"] is True

        record = incident("inc-live-1", 2)
        result = RcaResult(
            id=rca_result_id(record.id, 2),
            incident_id=record.id,
            incident_revision=2,
            at=record.updated_at,
            analyzed_at=record.updated_at,
            status=RcaStatus.OK,
            causes=[RankedCause(service="db", probability=0.8, kind=CauseKind.SATURATION)],
            summary="db saturated",
        )
        await gw.publisher.publish(
            [
                Message(Topics.INCIDENTS, record.encode(), key=record.id.encode()),
                Message(Topics.RCA_RESULTS, result.encode(), key=record.id.encode()),
            ]
        )
        incidents = await eventually(lambda: reader.of("incident"), timeout=60, what="the incident on the stream")
        rcas = await eventually(lambda: reader.of("rca"), timeout=60, what="the RCA result on the stream")
    assert incidents[0]["id"] == "inc-live-1"
    assert incidents[0]["revision"] == 2
    assert incidents[0]["services"] == ["payment"]
    assert incidents[0]["member_count"] == 1
    assert incidents[0]["status"] == "open"
    assert rcas[0]["incident_id"] == "inc-live-1"
    assert rcas[0]["revision"] == 2
    assert rcas[0]["causes"] == [{"service": "db", "probability": 0.8, "kind": "saturation", "rule": ""}]
    await eventually(lambda: gw.live.subscribers == 0, timeout=30, what="the closed client unsubscribed")


async def test_stream_needs_a_key(running_gateway: RunningGateway) -> None:
    async with await running_gateway.client(None) as client:
        response = await client.get("/api/v1/events")
    assert response.status_code == 401
    assert response.json()["error"]


async def test_a_slow_client_loses_its_oldest_events_and_is_told() -> None:
    feed = LiveFeed(GatewaySettings(topic_prefix="unused."), "kafka://127.0.0.1:9", queue_limit=3)
    slow, fast = feed.subscribe(), feed.subscribe()
    for n in range(5):
        feed.fan_out(LiveEvent("incident", json.dumps({"n": n})))
    events, dropped = await slow.get(0.0)
    assert dropped == 2
    assert [json.loads(e.data)["n"] for e in events] == [2, 3, 4]
    assert len((await fast.get(0.0))[0]) == 3
    assert await slow.get(0.0) == ([], 0)


async def test_feed_follows_a_broker_that_comes_up_after_the_gateway(
    broker_url: str, topic_prefix: str, publisher: Publisher
) -> None:
    """Started against an address where nothing listens, it retries; moved onto the real one, it follows."""
    settings = GatewaySettings(topic_prefix=topic_prefix)
    feed = LiveFeed(settings, "kafka://127.0.0.1:9")
    await feed.start()
    try:
        subscription = feed.subscribe()
        await eventually(lambda: feed.failures >= 1, timeout=30, what="a failed first attempt")
        assert not feed.connected
        feed.broker_url = broker_url  # the broker "comes up": the next retry finds it
        await eventually(lambda: feed.connected, timeout=90, what="the feed following after its retries")
        record = incident("inc-late", 1)
        await publisher.publish([Message(Topics.INCIDENTS, record.encode(), key=record.id.encode())])

        async def received() -> list[LiveEvent]:
            events, _ = await subscription.get(0.5)
            return [e for e in events if json.loads(e.data)["id"] == "inc-late"]

        await eventually(received, timeout=60, what="the incident after the broker came up")
    finally:
        await feed.stop()
    assert feed.subscribers == 0


async def test_feed_rides_out_a_broker_that_goes_away_and_comes_back(tmp_path: Path) -> None:
    """The broker stops under a following feed and starts again (empty, as the embedded one does): the feed
    neither crashes nor needs a restart, and what is published afterwards reaches the client."""
    broker = EmbeddedBroker(log_path=tmp_path / "tansu.log")
    await asyncio.to_thread(broker.start)
    prefix = "restart."
    feed = LiveFeed(GatewaySettings(topic_prefix=prefix), broker.url)
    subscription = feed.subscribe()
    seen: set[str] = set()
    kinds: set[str] = set()

    async def received(incident_id: str) -> bool:
        events, _ = await subscription.get(0.5)
        kinds.update(e.kind for e in events)
        seen.update(str(json.loads(e.data)["id"]) for e in events if e.kind == "incident")
        return incident_id in seen

    async def publish(record: IncidentRecord) -> None:
        await ensure_topics(broker.url, prefix)
        publisher = Publisher(broker.url, prefix)
        try:
            await publisher.publish([Message(Topics.INCIDENTS, record.encode(), key=record.id.encode())])
        finally:
            await publisher.stop()

    try:
        await ensure_topics(broker.url, prefix)
        await feed.start()
        await eventually(lambda: feed.connected, timeout=60, what="the feed following the broker")
        await publish(incident("inc-before", 1))
        await eventually(lambda: received("inc-before"), timeout=60, what="the incident before the restart")
        await asyncio.to_thread(broker.stop)
        await eventually(lambda: feed.failures >= 1, timeout=60, what="the feed noticing the broker went away")
        assert not feed.connected
        broker = EmbeddedBroker(port=broker.port, log_path=tmp_path / "tansu-again.log")
        await asyncio.to_thread(broker.start)
        await ensure_topics(broker.url, prefix)
        await eventually(lambda: feed.connected, timeout=90, what="the feed following the broker again")
        await publish(incident("inc-after", 1))
        await eventually(lambda: received("inc-after"), timeout=60, what="the incident after the restart")
        assert "resync" in kinds, "clients are told to read the list again after the outage"
    finally:
        await feed.stop()
        await asyncio.to_thread(broker.stop)
