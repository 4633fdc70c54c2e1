"""Generic webhooks: a JSON body signed with HMAC-SHA256 over the timestamp and the raw body, and its check."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping

from aiops_action.notify.messages import Notification

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "sign",
    "verify_signature",
    "webhook_body",
]

SIGNATURE_HEADER = "X-AIOps-Signature"
TIMESTAMP_HEADER = "X-AIOps-Timestamp"
DEFAULT_TOLERANCE_S = 300.0


def _digest(secret: str, timestamp: str, body: bytes) -> str:
    # the timestamp is part of what is signed, so an old body cannot be replayed with a fresh one
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The two headers of a signed body: ``X-AIOps-Timestamp`` (Unix seconds) and ``X-AIOps-Signature``.

    >>> sign("k", b"{}", timestamp=1700000000)[SIGNATURE_HEADER][:7]
    'sha256='
    """
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return {TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: f"sha256={_digest(secret, stamp, body)}"}


def verify_signature(
    secret: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    now: float | None = None,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> bool:
    """For receivers: True when ``headers`` sign ``body`` (the raw bytes received) with ``secret`` and the
    timestamp is within ``tolerance_s`` of ``now``; a replayed or altered message is False.

    ``headers`` is looked up case-insensitively.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    stamp = lowered.get(TIMESTAMP_HEADER.lower(), "")
    signature = lowered.get(SIGNATURE_HEADER.lower(), "")
    if not stamp.isdigit() or not signature.startswith("sha256="):
        return False
    current = time.time() if now is None else now
    if abs(current - int(stamp)) > tolerance_s:
        return False
    return hmac.compare_digest(signature.removeprefix("sha256="), _digest(secret, stamp, body))


def webhook_body(n: Notification, secret: str, timestamp: int | None = None) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(n.as_dict(), separators=(",", ":"), sort_keys=True).encode()
    return body, {"Content-Type": "application/json", **sign(secret, body, timestamp)}
