"""A local webhook receiver for tests: it records every message a channel delivers (Slack-format and signed webhook
bodies alike) and whether its signature verified."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from aiops_action.notify.webhook import verify_signature

__all__ = ["WebhookReceiver", "receiving"]


@dataclass
class WebhookReceiver:
    secret: str = ""
    url: str = ""
    bodies: list[dict[str, Any]] = field(default_factory=list)
    signed: list[bool] = field(default_factory=list)
    """For each body: its signature verified with ``secret`` (False as well when there is no secret)."""

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.signed.append(bool(self.secret) and verify_signature(self.secret, raw, request.headers))
        self.bodies.append(json.loads(raw))
        return web.Response(text="ok")

    def about(self, text: str) -> list[dict[str, Any]]:
        """The bodies that mention ``text`` anywhere (an execution id, an incident id)."""
        return [b for b in self.bodies if text in json.dumps(b)]


@asynccontextmanager
async def receiving(secret: str = "") -> AsyncIterator[WebhookReceiver]:
    """A receiver listening on a free loopback port at ``receiver.url`` until the block ends."""
    receiver = WebhookReceiver(secret)
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    receiver.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    try:
        yield receiver
    finally:
        await runner.cleanup()
