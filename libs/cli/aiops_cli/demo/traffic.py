"""The shop's traffic as data: the daily load shape and each request's spans across the call graph (pure)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from aiops_cli.demo.faults import BASE_LATENCY_S, CALLS, ShopState

__all__ = ["BASE_RPS", "OPERATIONS", "SpanSpec", "daily_load", "requests_in", "simulate_request"]

BASE_RPS = 4.0
"""Front-end requests per second at the daily mean load."""

CALLER_FAILS_WITH_CALLEE = 0.5
"""Share of a callee's failures its caller fails with."""

OPERATIONS: dict[str, str] = {
    "frontend": "GET /checkout",
    "checkout": "POST /orders",
    "payment": "POST /charge",
    "database": "INSERT orders",
    "inventory": "GET /stock",
}
"""Each service's one operation: the ``operation`` label of its red.* series."""


def daily_load(ts_s: float) -> float:
    """Load relative to the daily mean at ``ts_s`` (UTC): low at night (0.65 around 03:00), high mid-afternoon."""
    hour = (ts_s % 86_400) / 3600
    return 1.0 + 0.35 * math.sin(2 * math.pi * (hour - 9.0) / 24)


def requests_in(ts_s: float, seconds: float, rng: random.Random) -> int:
    """Front-end requests arriving in ``seconds`` from ``ts_s``: the load shape with 10 % noise per second (steadier
    than Poisson at these rates, as a shop's traffic is when many users add up)."""
    mean = BASE_RPS * daily_load(ts_s) * seconds
    return max(0, round(mean + rng.gauss(0.0, 0.1 * mean)))


@dataclass(frozen=True, slots=True)
class SpanSpec:
    """One server span: ``parent`` is the index of the caller's span in the same request, -1 for the root."""

    service: str
    operation: str
    start_ns: int
    end_ns: int
    error: bool
    parent: int
    message: str = ""
    """Why it failed (its error log line), empty when it did not."""


_ERROR_MESSAGES: dict[str, str] = {
    "frontend": "checkout call failed",
    "checkout": "order could not be placed",
    "payment": "charge failed: card processor returned 500",
    "database": "insert failed: connection reset by peer",
    "inventory": "stock lookup failed: upstream timeout",
}


def simulate_request(state: ShopState, end_s: float, rng: random.Random) -> list[SpanSpec]:
    """The spans of one request that ends at ``end_s``: every service's own time scaled by its faults and load,
    callees inside their caller, an error in a callee failing its caller half the time."""
    load = daily_load(end_s)
    effects = {name: state.effect(name, end_s, load) for name in CALLS}

    def visit(service: str) -> tuple[float, bool, list[tuple[str, float, float, bool, int, str]]]:
        # (duration, error, spans as (service, offset, duration, error, parent, message)) relative to this start.
        effect = effects[service]
        own = BASE_LATENCY_S[service] * effect.latency_factor * rng.lognormvariate(0.0, 0.15)
        spans: list[tuple[str, float, float, bool, int, str]] = [(service, 0.0, 0.0, False, -1, "")]
        at = own / 2
        failed = rng.random() < effect.error_rate
        message = _ERROR_MESSAGES[service] if failed else ""
        for callee in CALLS[service]:
            duration, error, child = visit(callee)
            base = len(spans)
            for svc, offset, dur, err, parent, msg in child:
                # The callee's own span (its list's root) hangs under this service's span, index 0.
                spans.append((svc, at + offset, dur, err, 0 if parent == -1 else base + parent, msg))
            at += duration
            # A caller answers half of its callees' failures from a fallback (a cached price, a retry that
            # worked): a failure shows most where it begins.
            if error and not failed and rng.random() < CALLER_FAILS_WITH_CALLEE:
                failed, message = True, f"{_ERROR_MESSAGES[service]}: {callee} failed"
        total = at + own / 2
        spans[0] = (service, 0.0, total, failed, -1, message)
        return total, failed, spans

    total, _, spans = visit("frontend")
    start_ns = int((end_s - total) * 1e9)
    return [
        SpanSpec(svc, OPERATIONS[svc], start_ns + int(off * 1e9), start_ns + int((off + dur) * 1e9), err, parent, msg)
        for svc, off, dur, err, parent, msg in spans
    ]
