"""The trace index: first failing spans, counted per minute and service, corrected as late spans of a trace come."""

from __future__ import annotations

import doctest

import pytest
from aiops_common.schemas.traces import Span
from aiops_rca import trace_index
from aiops_rca.trace_index import MINUTE_MS, TraceIndex, first_failing_spans

pytestmark = pytest.mark.unit


def span(trace: str, sid: str, parent: str, service: str, at_ms: int, status: str = "ERROR") -> Span:
    return Span(
        trace, sid, parent, service, f"{service}-op", "SERVER", at_ms * 1_000_000, (at_ms + 5) * 1_000_000, status
    )


def chain(trace: str, at_ms: int, failing: list[str], ok_below: str = "") -> list[Span]:
    """frontend -> checkout -> payment -> db; ``failing`` services return ERROR."""
    out, parent = [], ""
    for service in ["frontend", "checkout", "payment", "db"]:
        out.append(span(trace, f"{trace}-{service}", parent, service, at_ms, "ERROR" if service in failing else "OK"))
        parent = f"{trace}-{service}"
    return out


def test_doctests() -> None:
    assert doctest.testmod(trace_index).failed == 0


def test_the_deepest_failing_span_is_the_origin() -> None:
    spans = chain("t1", 1000, ["frontend", "checkout", "payment"]) + chain("t2", 2000, ["frontend"])
    assert first_failing_spans(spans) == [
        ("t1", "payment", "payment-op", 1000),
        ("t2", "frontend", "frontend-op", 2000),
    ]
    assert first_failing_spans(chain("t3", 0, [])) == []


def test_a_failing_child_under_a_healthy_parent_still_counts_its_parent_as_origin() -> None:
    # frontend ERROR -> checkout OK -> payment ERROR: the frontend's own error began at the frontend.
    spans = chain("t1", 0, ["frontend", "payment"])
    assert {s for _, s, _, _ in first_failing_spans(spans)} == {"frontend", "payment"}


@pytest.mark.parametrize("order", ["caller_first", "callee_first", "one_batch"])
def test_index_matches_first_failing_spans_whatever_the_batches(order: str) -> None:
    spans = [s for i in range(20) for s in chain(f"t{i}", i * 10_000, ["frontend", "checkout", "payment"])]
    index = TraceIndex()
    if order == "one_batch":
        index.add(spans)
    else:
        for s in spans if order == "caller_first" else reversed(spans):
            index.add([s])
    origins = index.origins(["frontend", "checkout", "payment", "db"], 0, 200_000)
    assert [(o.service, o.count) for o in origins] == [("payment", 20)]
    assert origins[0].trace_id.startswith("t") and origins[0].span == "payment-op"
    assert len(index) == 20


def test_redelivered_spans_count_once() -> None:
    index = TraceIndex()
    spans = chain("t1", 0, ["checkout", "payment"])
    index.add(spans)
    index.add(spans)
    assert [(o.service, o.count) for o in index.origins(["payment", "checkout"], 0, MINUTE_MS)] == [("payment", 1)]


def test_origins_keep_to_the_window_and_services() -> None:
    index = TraceIndex()
    index.add(chain("t1", 0, ["payment"]) + chain("t2", 10 * MINUTE_MS, ["db"]))
    assert [o.service for o in index.origins(["payment", "db"], 0, MINUTE_MS - 1)] == ["payment"]
    assert [o.service for o in index.origins(["payment", "db"], 9 * MINUTE_MS, 11 * MINUTE_MS)] == ["db"]
    assert index.origins(["search"], 0, 20 * MINUTE_MS) == []


def test_memory_is_bounded_by_the_horizon_and_pending_traces() -> None:
    index = TraceIndex(horizon_s=600, pending_s=60, max_pending=50)
    for minute in range(120):
        index.add(chain(f"t{minute}", minute * MINUTE_MS, ["payment"]))
    assert len(index._buckets) <= 12
    assert len(index._pending) <= 2
    (kept,) = index.origins(["payment"], 0, 200 * MINUTE_MS)
    assert 10 <= kept.count <= 12
