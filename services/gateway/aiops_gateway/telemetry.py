"""The gateway's own metrics, on its ``/metrics``."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

__all__ = ["LATENCY", "RATE_LIMITED", "REQUESTS"]

REQUESTS = Counter(
    "aiops_gateway_requests_total", "Requests answered, by route and status", ["method", "route", "status"]
)
LATENCY = Histogram(
    "aiops_gateway_request_seconds",
    "Time to answer a request, by route",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
)
RATE_LIMITED = Counter("aiops_gateway_rate_limited_total", "Requests refused with 429, by kind of caller", ["via"])
