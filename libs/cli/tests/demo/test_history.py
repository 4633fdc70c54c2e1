"""The backfill's payloads: the series the live shop emits, in time order, with the shop's labels."""

from __future__ import annotations

import random

import pytest
from aiops_cli.demo.faults import SERVICES, ShopState
from aiops_cli.demo.history import metric_rows, trace_requests
from aiops_cli.demo.traffic import OPERATIONS

pytestmark = pytest.mark.unit

START = 1_780_000_000.0


def test_traces_cover_the_span_per_minute_with_every_service_and_parent_links() -> None:
    requests = list(trace_requests(ShopState(), START, START + 150, random.Random(0)))
    assert len(requests) == 3  # 60 + 60 + 30 seconds
    ends = []
    for request in requests:
        by_service = {
            r["resource"]["attributes"][0]["value"]["stringValue"]: r["scopeSpans"][0]["spans"]
            for r in request["resourceSpans"]
        }
        assert set(by_service) == set(SERVICES)
        ids = {s["spanId"] for spans in by_service.values() for s in spans}
        for service, spans in by_service.items():
            for span in spans:
                assert span["name"] == OPERATIONS[service] and span["kind"] == 2  # SERVER
                assert len(span["traceId"]) == 32 and len(span["spanId"]) == 16
                assert ("parentSpanId" in span) is (service != "frontend")
                assert span.get("parentSpanId", next(iter(ids))) in ids
                assert int(span["startTimeUnixNano"]) < int(span["endTimeUnixNano"])
                ends.append(int(span["endTimeUnixNano"]))
    assert min(ends) >= START * 1e9 and max(ends) <= (START + 151) * 1e9
    # About 4 requests a second of five spans each.
    assert 150 * 4 * 5 * 0.6 < len(ends) < 150 * 4 * 5 * 1.6


def test_errors_carry_the_error_status_and_message() -> None:
    state = ShopState()
    state.inject("payment", "errors", 600, START)
    request = next(trace_requests(state, START + 1, START + 30, random.Random(0)))
    failed = [
        span
        for r in request["resourceSpans"]
        if r["resource"]["attributes"][0]["value"]["stringValue"] == "payment"
        for span in r["scopeSpans"][0]["spans"]
        if "status" in span
    ]
    assert failed and all(s["status"]["code"] == 2 and "charge failed" in s["status"]["message"] for s in failed)


def test_gauges_every_step_for_every_service_with_the_sdk_s_names() -> None:
    rows = metric_rows(ShopState(), START, START + 60, 5.0, random.Random(0))
    assert len(rows) == 12 * len(SERVICES) * 2
    assert {r["name"] for r in rows} == {"shop_cpu_utilization", "shop_replicas"}
    assert {r["labels"]["service"] for r in rows} == set(SERVICES)  # type: ignore[index]
    cpu = [float(r["value"]) for r in rows if r["name"] == "shop_cpu_utilization"]  # type: ignore[arg-type]
    assert all(0 < v < 60 for v in cpu) and len(set(cpu)) > 1  # noisy, not a flat line
