"""The batched agent loop: messages counted, undecodable ones dropped, all acknowledged only after the handler."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import pytest
from aiops_common.agent_loop import decode_batches_or_skip
from aiops_common.schemas import SchemaError
from prometheus_client import REGISTRY

pytestmark = pytest.mark.unit


@dataclass(frozen=True)
class Event:
    value: bytes


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _decode(value: bytes) -> int:
    if not value.isdigit():
        raise SchemaError(f"not a number: {value!r}")
    return int(value)


async def _batches(*batches: Sequence[bytes]) -> AsyncIterator[list[Event]]:
    for batch in batches:
        yield [Event(v) for v in batch]


async def test_a_batch_is_handled_once_and_acknowledged_only_after() -> None:
    agent = f"test_{uuid.uuid4().hex[:8]}"  # the registry is per process: a name no other test uses
    acked: list[bytes] = []
    handled: list[tuple[list[int], list[bytes]]] = []

    async def handle(records: list[int]) -> int:
        handled.append((records, list(acked)))  # what was acknowledged when the handler ran
        return 1

    async def ack(event: Event) -> None:
        acked.append(event.value)

    batches = _batches([b"1", b"x", b"2"], [b"y"], [b"3"])
    results = [r async for r in decode_batches_or_skip(batches, agent, _decode, handle, ack)]

    # The second batch decodes to nothing: no handler call, its message acknowledged as a drop.
    assert handled == [([1, 2], []), ([3], [b"1", b"x", b"2", b"y"])]
    assert acked == [b"1", b"x", b"2", b"y", b"3"]
    assert results == [1, 0, 1]
    assert _metric("aiops_agent_records_in_total", agent=agent) == 5
    assert _metric("aiops_agent_dropped_records_total", agent=agent, reason="undecodable") == 2
    assert _metric("aiops_agent_records_out_total", agent=agent) == 2
    assert _metric("aiops_agent_batch_seconds_count", agent=agent) == 5  # one observation per message


async def test_a_failed_batch_is_not_acknowledged_and_the_error_goes_on() -> None:
    acked: list[bytes] = []

    async def handle(records: list[int]) -> int:
        if 2 in records:
            raise RuntimeError("store down")
        return 0

    async def ack(event: Event) -> None:
        acked.append(event.value)

    loop = decode_batches_or_skip(_batches([b"1"], [b"2", b"3"]), f"test_{uuid.uuid4().hex[:8]}", _decode, handle, ack)
    with pytest.raises(RuntimeError, match="store down"):
        async for _ in loop:
            pass
    assert acked == [b"1"]
