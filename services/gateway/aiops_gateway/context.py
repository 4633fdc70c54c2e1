"""What every route works with: the stores, the broker publisher, the authenticator and the live feed."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import httpx
from aiops_common.broker import Publisher
from aiops_common.broker.addresses import broker_accepts_connections
from aiops_common.documents import DocumentFilter, DocumentStore, Page, open_document_store
from aiops_common.feedback import FeedbackStore, open_feedback_store
from aiops_common.topology import TopologyStore, open_topology_store
from aiops_common.tsdb import TimeSeriesStore, open_tsdb
from fastapi import Request

from aiops_gateway.answer_cache import AnswerCache
from aiops_gateway.errors import ApiError
from aiops_gateway.settings import GatewaySettings

if TYPE_CHECKING:
    from aiops_gateway.auth.authenticator import Authenticator
    from aiops_gateway.live import LiveFeed

__all__ = ["Gateway", "gateway"]

T = TypeVar("T")


@dataclass(slots=True)
class Gateway:
    settings: GatewaySettings
    documents: DocumentStore
    topology: TopologyStore
    tsdb: TimeSeriesStore
    feedback: FeedbackStore
    publisher: Publisher
    auth: Authenticator
    live: LiveFeed
    http: httpx.AsyncClient  # forwards the ingestion routes to the ingestion service
    answers: AnswerCache  # recent answers of the list routes
    _broker_checked: tuple[float, bool] = (0.0, False)

    @classmethod
    def open(cls, settings: GatewaySettings, broker_url: str) -> Gateway:
        """Open every store by URL (connections are made on first use) and the publisher (started by ``start``)."""
        from aiops_gateway.auth.authenticator import Authenticator
        from aiops_gateway.auth.keys import KeyStore
        from aiops_gateway.live import LiveFeed

        documents = open_document_store(settings.documents_url)
        live = LiveFeed(settings, broker_url)
        answers = AnswerCache(settings.gateway_list_cache_s)
        live.listeners.append(lambda event: answers.clear())
        return cls(
            settings=settings,
            documents=documents,
            topology=open_topology_store(settings.topology_url),
            tsdb=open_tsdb(settings.tsdb_url),
            feedback=open_feedback_store(settings.feedback_url),
            publisher=Publisher(
                broker_url, settings.topic_prefix, acks=settings.producer_acks, timeout_s=settings.publish_timeout_s
            ),
            auth=Authenticator(settings, KeyStore(documents)),
            live=live,
            http=httpx.AsyncClient(
                timeout=settings.gateway_request_timeout_s,
                limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
            ),
            answers=answers,
        )

    async def start(self) -> None:
        with contextlib.suppress(Exception):  # the broker may be down: mutating calls answer 503 until it is back
            await self.publisher.start()
        await self.live.start()

    async def within(self, call: Awaitable[T]) -> T:
        """A store read bounded by ``AIOPS_GATEWAY_REQUEST_TIMEOUT_S`` (TimeoutError: answered 503)."""
        return await asyncio.wait_for(call, self.settings.gateway_request_timeout_s)

    async def page(self, collection: str, where: DocumentFilter, limit: int, cursor: str | None) -> Page:
        """One page of a collection, newest first; a cursor that is not one (or names a time no store can hold)
        is a 400."""
        try:
            return await self.within(self.documents.query(collection, where, limit=limit, cursor=cursor))
        except (ValueError, OverflowError) as exc:
            raise ApiError(400, f"cursor: {exc}") from None

    async def publisher_reachable(self) -> bool:
        """Whether the broker accepts connections (remembered 2 s, so probes cost it little)."""
        checked_at, ok = self._broker_checked
        if time.monotonic() - checked_at >= 2.0:
            ok = await broker_accepts_connections(self.publisher.broker_url)
            self._broker_checked = (time.monotonic(), ok)
        return ok

    async def close(self) -> None:
        await self.live.stop()
        await self.publisher.stop()
        await self.http.aclose()
        for store in (self.documents, self.topology, self.tsdb, self.feedback):
            await store.close()


def gateway(request: Request) -> Gateway:
    """The gateway a request is served by (a FastAPI dependency)."""
    gw: Gateway = request.app.state.gateway
    return gw
