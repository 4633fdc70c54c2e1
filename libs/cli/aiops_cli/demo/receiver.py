"""A local Slack and webhook receiver: prints each notification the platform sends, and keeps them."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

__all__ = ["Received", "Receiver", "slack_text"]


@dataclass(frozen=True, slots=True)
class Received:
    channel: str
    """``slack`` or ``webhook``."""
    body: dict[str, Any]
    signed: bool
    """A webhook's HMAC signature checked out (always False for Slack, which is not signed)."""
    at: float


def slack_text(body: dict[str, Any]) -> str:
    """The first line a person would read in Slack: the message's text, else its first section block's."""
    text = body.get("text")
    if isinstance(text, str) and text:
        return text.splitlines()[0]
    for block in body.get("blocks", []) if isinstance(body.get("blocks"), list) else []:
        inner = block.get("text") if isinstance(block, dict) else None
        if isinstance(inner, dict) and isinstance(inner.get("text"), str):
            return str(inner["text"]).splitlines()[0]
    return json.dumps(body)[:200]


def _signed(secret: str, body: bytes, headers: Any) -> bool:
    timestamp = headers.get("X-AIOps-Timestamp", "")
    signature = headers.get("X-AIOps-Signature", "")
    try:
        fresh = abs(time.time() - float(timestamp)) < 300
    except ValueError:
        return False
    expected = "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return fresh and hmac.compare_digest(expected, signature)


class Receiver:
    """``POST /slack`` (a Slack incoming webhook's stand-in) and ``POST /webhook`` (signed with ``secret``)."""

    def __init__(self, secret: str, show: Callable[[str], object] = print) -> None:
        self.secret = secret
        self.show = show
        self.received: list[Received] = []
        self.app = web.Application()
        self.app.add_routes([web.post("/slack", self._slack), web.post("/webhook", self._webhook)])
        self._runner: web.AppRunner | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        return f"http://{host}:{sockets[0].getsockname()[1] if sockets else port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _read(self, request: web.Request) -> tuple[bytes, dict[str, Any]] | None:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return None
        return (raw, body) if isinstance(body, dict) else None

    async def _slack(self, request: web.Request) -> web.Response:
        read = await self._read(request)
        if read is None:
            return web.Response(status=400, text="invalid_payload")
        self.received.append(Received("slack", read[1], False, time.time()))
        self.show(f"[slack]   {slack_text(read[1])}")
        return web.Response(text="ok")  # what Slack answers

    async def _webhook(self, request: web.Request) -> web.Response:
        read = await self._read(request)
        if read is None:
            return web.json_response({"error": "not a JSON object"}, status=400)
        raw, body = read
        signed = _signed(self.secret, raw, request.headers)
        self.received.append(Received("webhook", body, signed, time.time()))
        # The platform's webhook body: kind, incident_id, title, cause, proposed_action, link...
        kind, incident, title = body.get("kind", "message"), body.get("incident_id", ""), body.get("title", "")
        self.show(f"[webhook] {kind} {incident} {title} (signature {'valid' if signed else 'INVALID'})")
        return web.json_response({"ok": True})
