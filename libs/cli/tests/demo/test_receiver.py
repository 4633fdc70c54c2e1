"""The local receiver: Slack messages and signed webhooks printed and kept, a forged signature named."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import httpx
import pytest
from aiops_cli.demo.receiver import Receiver, slack_text

pytestmark = pytest.mark.functional


def _sign(secret: str, body: bytes) -> dict[str, str]:
    ts = str(int(time.time()))
    digest = hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"X-AIOps-Timestamp": ts, "X-AIOps-Signature": f"sha256={digest}", "Content-Type": "application/json"}


async def test_slack_and_webhook_messages_are_printed_and_kept() -> None:
    lines: list[str] = []
    receiver = Receiver("s3cret", show=lines.append)
    url = await receiver.start()
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            slack = {"text": "[CRITICAL] payment: red.latency_s\nmore", "blocks": []}
            assert (await client.post(f"{url}/slack", json=slack)).text == "ok"
            body = json.dumps({"kind": "approval", "incident_id": "inc-1", "title": "Approval needed"}).encode()
            assert (await client.post(f"{url}/webhook", content=body, headers=_sign("s3cret", body))).status_code == 200
            forged = _sign("other", body)
            assert (await client.post(f"{url}/webhook", content=body, headers=forged)).status_code == 200
            assert (await client.post(f"{url}/slack", content=b"not json")).status_code == 400
    finally:
        await receiver.stop()
    assert [(r.channel, r.signed) for r in receiver.received] == [
        ("slack", False),
        ("webhook", True),
        ("webhook", False),
    ]
    assert lines[0] == "[slack]   [CRITICAL] payment: red.latency_s"
    assert "approval inc-1 Approval needed (signature valid)" in lines[1]
    assert "signature INVALID" in lines[2]


def test_slack_text_falls_back_to_the_first_section() -> None:
    assert slack_text({"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*payment* slow\nx"}}]}) == (
        "*payment* slow"
    )
