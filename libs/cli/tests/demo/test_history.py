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
            r.resource.attributes[0].value.string_value: r.scope_spans[0].spans for r in request.resource_spans
        }
        assert set(by_service) == set(SERVICES)
        ids = {s.span_id for spans in by_service.values() for s in spans}
        for service, spans in by_service.items():
            for span in spans:
                assert span.name == OPERATIONS[service]
                assert (span.parent_span_id == b"") is (service == "frontend")
                assert span.parent_span_id in ids or service == "frontend"
                ends.append(span.end_time_unix_nano)
    assert min(ends) >= START * 1e9 and max(ends) <= (START + 151) * 1e9
    # About 4 requests a second of five spans each.
    assert 150 * 4 * 5 * 0.6 < len(ends) < 150 * 4 * 5 * 1.6


def test_gauges_every_step_for_every_service_with_the_sdk_s_names() -> None:
    rows = metric_rows(ShopState(), START, START + 60, 5.0, random.Random(0))
    assert len(rows) == 12 * len(SERVICES) * 2
    assert {r["name"] for r in rows} == {"shop_cpu_utilization", "shop_replicas"}
    assert {r["labels"]["service"] for r in rows} == set(SERVICES)  # type: ignore[index]
    cpu = [float(r["value"]) for r in rows if r["name"] == "shop_cpu_utilization"]  # type: ignore[arg-type]
    assert all(0 < v < 60 for v in cpu) and len(set(cpu)) > 1  # noisy, not a flat line
