"""Rate limits: each API key or token subject at ``gateway_rate_limit``, each client address without valid
credentials at ``gateway_anonymous_rate_limit``.

The ``limits`` library's moving window, in this process's memory: a caller gets exactly N requests in any window
of the period (a fixed window would allow 2N across a boundary, which matters most for guessing keys). A hit costs
a few microseconds and each caller's window holds at most N timestamps, dropped by the library once they expire.
Limits are per gateway process: replicas behind a load balancer each count their own share.

Three buckets, so that one kind of traffic cannot lock out another:

- ``principal``: every request of an authenticated caller, by :attr:`Principal.identity` (``via`` ``key``/``oidc``);
- ``anonymous``: requests without credentials, by client address (open reads, or the 401 that asks for a key);
- ``failed``: refused credentials, by client address. While it is spent, credentials from that address are not
  even checked (429), so keys cannot be guessed faster than the limit whatever the answers would have been.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import limits
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from aiops_gateway import telemetry
from aiops_gateway.errors import ApiError

__all__ = ["RateLimits", "Verdict", "parse_limit"]


def parse_limit(text: str, setting: str) -> limits.RateLimitItem:
    """``100/second``, ``1200/minute``…; a bad value names its setting (raised at start, not on a request)."""
    try:
        return limits.parse(text)
    except ValueError:
        raise ValueError(
            f"{setting}={text!r} is not a rate limit; write it as COUNT/PERIOD, e.g. 1200/minute or 20/second"
        ) from None


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a counted request has left: the limit, the requests remaining in the window."""

    limit: int
    remaining: int

    def headers(self) -> dict[str, str]:
        return {"X-RateLimit-Limit": str(self.limit), "X-RateLimit-Remaining": str(self.remaining)}


class RateLimits:
    """The gateway's three buckets (see the module's docstring) over one in-memory moving window."""

    def __init__(self, per_principal: str, anonymous: str) -> None:
        self.per_principal = parse_limit(per_principal, "AIOPS_GATEWAY_RATE_LIMIT")
        self.anonymous = parse_limit(anonymous, "AIOPS_GATEWAY_ANONYMOUS_RATE_LIMIT")
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def principal(self, identity: str, via: str) -> Verdict:
        """Count a request of an authenticated caller; 429 once its window is full."""
        return self._hit(self.per_principal, via, "principal", identity)

    def without_credentials(self, address: str) -> Verdict:
        """Count a request that presents no credentials; 429 once the address's window is full."""
        return self._hit(self.anonymous, "anonymous", "anonymous", address)

    def check_failures(self, address: str) -> None:
        """429 while ``address`` has spent its window on refused credentials (checked before any key is)."""
        if not self._limiter.test(self.anonymous, "failed", address):
            self._refuse(self.anonymous, "failed", "failed", address)

    def failed(self, address: str) -> None:
        """Count refused credentials from ``address`` (the refusal itself is answered by the caller)."""
        self._limiter.hit(self.anonymous, "failed", address)

    def _hit(self, item: limits.RateLimitItem, via: str, bucket: str, who: str) -> Verdict:
        if not self._limiter.hit(item, bucket, who):
            self._refuse(item, via, bucket, who)
        stats = self._limiter.get_window_stats(item, bucket, who)
        return Verdict(item.amount, max(0, stats.remaining))

    def _refuse(self, item: limits.RateLimitItem, via: str, bucket: str, who: str) -> None:
        telemetry.RATE_LIMITED.labels(via).inc()
        reset_at = self._limiter.get_window_stats(item, bucket, who).reset_time
        retry_after = max(1, math.ceil(reset_at - time.time()))
        whose = {
            "principal": "these credentials",
            "anonymous": "callers without credentials from this address",
            "failed": "refused credentials from this address",
        }[bucket]
        raise ApiError(
            429,
            f"rate limit reached: {item.amount} requests per {_period(item)} for {whose}; retry in {retry_after} s",
            {"Retry-After": str(retry_after), **Verdict(item.amount, 0).headers()},
        )


def _period(item: limits.RateLimitItem) -> str:
    unit = item.GRANULARITY.name
    return unit if item.multiples == 1 else f"{item.multiples} {unit}s"
