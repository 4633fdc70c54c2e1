"""``/api/v1/events``: incidents and RCA results as they happen, as Server-Sent Events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from aiops_gateway.auth import Principal, Role, require
from aiops_gateway.context import gateway
from aiops_gateway.errors import ERROR_RESPONSES
from aiops_gateway.live import ExecutionEvent, IncidentEvent, LiveFeed, RcaEvent

__all__ = ["HEARTBEAT_S", "router"]

router = APIRouter(tags=["events"], responses=ERROR_RESPONSES)

HEARTBEAT_S = 15.0
"""A comment line this often keeps proxies from closing an idle stream and finds clients that went away."""

_DESCRIPTION = f"""A stream that does not end (`text/event-stream`). Events:

- `hello` (first, and once per connection): `{{"live": bool, "heartbeat_s": {HEARTBEAT_S:g}}}`; `live` is false while
  the gateway cannot reach the broker (events follow once it can). Load the incidents list after it.
- `incident`: an incident as of its latest change (IncidentEvent).
- `rca`: a new root-cause analysis of an incident revision, its best causes first (RcaEvent).
- `execution`: a runbook execution in a new state: proposed, approved, running, verified, rolled back (ExecutionEvent).
- `dropped`: `{{"count": n}}`: this client read too slowly and lost its `n` oldest events; load the list again.
- `resync`: `{{"reason": "..."}}`: the gateway lost the broker for a while and follows it again from its end;
  what was published meanwhile is in the stores: load the list again.

A comment line (`: heartbeat`) comes every {HEARTBEAT_S:g} s when nothing else does. Browsers read it with `fetch()`
(so the `Authorization` header is sent) and reconnect with backoff when it ends."""


def _frame(kind: str, data: str) -> str:
    return f"event: {kind}\ndata: {data}\n\n"


async def _stream(feed: LiveFeed) -> AsyncIterator[str]:
    subscription = feed.subscribe()
    try:
        yield "retry: 5000\n\n"
        yield _frame("hello", json.dumps({"live": feed.connected, "heartbeat_s": HEARTBEAT_S}))
        while not subscription.closed:
            events, dropped = await subscription.get(HEARTBEAT_S)
            if dropped:
                yield _frame("dropped", json.dumps({"count": dropped}))
            for event in events:
                yield _frame(event.kind, event.data)
            if not events and not dropped and not subscription.closed:
                yield ": heartbeat\n\n"  # a client that went away is found when this cannot be sent
    finally:
        feed.unsubscribe(subscription)


@router.get(
    "/events",
    response_class=StreamingResponse,
    summary="Live incidents and RCA results (Server-Sent Events)",
    description=_DESCRIPTION,
    responses={
        200: {
            "description": "The event stream",
            "content": {
                "text/event-stream": {
                    "schema": {"type": "string"},
                    "example": 'event: incident\ndata: {"id": "inc-…", "revision": 3, …}\n\n',
                }
            },
        }
    },
    openapi_extra={
        "x-event-schemas": {
            "incident": IncidentEvent.model_json_schema(),
            "rca": RcaEvent.model_json_schema(),
            "execution": ExecutionEvent.model_json_schema(),
        }
    },
)
async def events(principal: Annotated[Principal, Depends(require(Role.VIEWER))], request: Request) -> StreamingResponse:
    feed = gateway(request).live
    return StreamingResponse(
        _stream(feed),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"},
    )
