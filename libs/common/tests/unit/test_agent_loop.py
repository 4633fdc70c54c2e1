"""The shared agent loop: every message counted in, undecodable ones counted as drops and skipped, handler timed."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from aiops_common.agent_loop import decode_or_skip
from aiops_common.observability import LogRateLimit
from aiops_common.schemas import SchemaError
from prometheus_client import REGISTRY

pytestmark = pytest.mark.unit


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _decode(value: bytes) -> int:
    if not value.isdigit():
        raise SchemaError(f"not a number: {value!r}")
    return int(value)


async def _messages(*values: bytes) -> AsyncIterator[bytes]:
    for value in values:
        yield value


async def test_undecodable_messages_are_dropped_by_reason_and_the_loop_goes_on() -> None:
    agent = f"test_{uuid.uuid4().hex[:8]}"  # the registry is per process: a name no other test uses
    handled: list[int] = []

    async def handle(n: int) -> int:
        handled.append(n)
        return n % 2  # odd numbers are "published"

    results = [r async for r in decode_or_skip(_messages(b"1", b"x", b"2", b"", b"3"), agent, _decode, handle)]

    assert handled == [1, 2, 3] and results == [1, 0, 1]
    assert _metric("aiops_agent_records_in_total", agent=agent) == 5
    assert _metric("aiops_agent_dropped_records_total", agent=agent, reason="undecodable") == 2
    assert _metric("aiops_agent_records_out_total", agent=agent) == 2
    assert _metric("aiops_agent_batch_seconds_count", agent=agent) == 5


async def test_a_handler_error_is_not_swallowed() -> None:
    async def handle(n: int) -> int:
        raise RuntimeError("store down")

    with pytest.raises(RuntimeError, match="store down"):
        async for _ in decode_or_skip(_messages(b"1"), f"test_{uuid.uuid4().hex[:8]}", _decode, handle):
            pass


def test_log_rate_limit_holds_back_and_reports_how_many() -> None:
    now = [0.0]
    limit = LogRateLimit(10.0, clock=lambda: now[0])
    assert limit("a") == 0
    assert limit("a") is None and limit("a") is None
    assert limit("b") == 0  # keys are independent
    now[0] = 10.0
    assert limit("a") == 2
    assert limit("a") is None


def test_log_rate_limit_notes_events_that_come_in_batches() -> None:
    now = [5.0]
    limit = LogRateLimit(10.0, clock=lambda: now[0])
    assert limit.note("late", 300) == (300, None)
    assert limit.note("late", 20) is None and limit.note("late", 7) is None
    now[0] = 17.5
    assert limit.note("late", 1) == (28, 12.5)  # everything since the last line, this batch included
    assert limit.note("late", 4) is None
