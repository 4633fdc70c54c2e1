"""The batched agent loop: messages counted, undecodable ones dropped, all acknowledged only after the handler;
a batch's store write retried, then counted as dropped, or retried until stored."""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from functools import partial

import pytest
import structlog
from aiops_common.agent_loop import AgentMeter, WriteRetry, decode_batches_or_skip, write_with_retry
from aiops_common.schemas import SchemaError
from prometheus_client import REGISTRY

pytestmark = pytest.mark.unit


@dataclass(frozen=True)
class Event:
    value: bytes


DELAYS = (0.01, 0.02, 0.04)


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _agent() -> str:
    return f"test_{uuid.uuid4().hex[:8]}"  # the registry and log limiter are per process: a name no other test uses


def _dropped(agent: str, reason: str) -> float:
    return _metric("aiops_agent_dropped_records_total", agent=agent, reason=reason)


class FlakyStore:
    """A store that raises ``error`` for its first ``failures`` writes, then takes them."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or ConnectionRefusedError(111, "Connection refused")
        self.tries = 0
        self.written: list[list[int]] = []

    async def write(self, records: list[int] | None = None) -> None:
        self.tries += 1
        if self.tries <= self.failures:
            raise self.error
        self.written.append(records or [])


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


async def test_a_store_back_within_the_retries_loses_nothing() -> None:
    agent, store = _agent(), FlakyStore(failures=len(DELAYS))
    started = time.monotonic()
    assert await write_with_retry(AgentMeter(agent), store.write, 7, WriteRetry(DELAYS))
    assert (store.tries, len(store.written)) == (len(DELAYS) + 1, 1)
    assert time.monotonic() - started >= sum(DELAYS)  # it waited between the tries
    assert _dropped(agent, "store_unavailable") == 0


async def test_a_store_down_past_the_retries_is_counted_as_dropped_and_logged_at_a_bounded_rate() -> None:
    agent, store = _agent(), FlakyStore(failures=len(DELAYS) + 1)
    with structlog.testing.capture_logs() as logs:
        assert not await write_with_retry(AgentMeter(agent), store.write, 7, WriteRetry(DELAYS))
    assert (store.tries, store.written) == (len(DELAYS) + 1, [])
    assert _dropped(agent, "store_unavailable") == 7
    retries = [line for line in logs if line["event"] == "store write failed, retrying"]
    # Three failures retried within 10 s: one line, the first; the give-up is the drop's own line.
    assert [(line["log_level"], line["agent"], line["attempt"], line["retry_in_s"]) for line in retries] == [
        ("warning", agent, 1, DELAYS[0])
    ]
    assert retries[0]["error"] == "ConnectionRefusedError: [Errno 111] Connection refused"
    gave_up = [line for line in logs if line["event"] == "skipping input"]
    assert [(line["reason"], line["agent"]) for line in gave_up] == [("store_unavailable", agent)]


async def test_data_the_store_refuses_is_dropped_without_retrying() -> None:
    agent, store = _agent(), FlakyStore(failures=1, error=ValueError("a logs document needs 'at'"))
    assert not await write_with_retry(AgentMeter(agent), store.write, 2, WriteRetry(DELAYS))
    assert store.tries == 1
    assert _dropped(agent, "unstorable") == 2


async def test_a_write_retried_until_stored_outlasts_its_delays_and_drops_nothing() -> None:
    agent = _agent()
    retry = WriteRetry(DELAYS[:2], until_stored=True, unavailable=(sqlite3.OperationalError,), unstorable=())
    store = FlakyStore(failures=6, error=sqlite3.OperationalError("database is locked"))
    with structlog.testing.capture_logs() as logs:
        assert await write_with_retry(AgentMeter(agent), store.write, 3, retry)
    assert (store.tries, len(store.written)) == (7, 1)
    assert _dropped(agent, "store_unavailable") == 0
    assert [line["retry_in_s"] for line in logs if line["event"] == "store write failed, retrying"] == [DELAYS[0]]


@pytest.mark.parametrize("error", [ValueError("bad"), KeyError("not the store's")])
async def test_an_error_that_is_not_the_store_s_goes_on_when_retrying_until_stored(error: Exception) -> None:
    agent, store = _agent(), FlakyStore(failures=1, error=error)
    retry = WriteRetry(DELAYS, until_stored=True, unavailable=(OSError,), unstorable=())
    with pytest.raises(type(error)):
        await write_with_retry(AgentMeter(agent), store.write, 1, retry)
    assert store.tries == 1
    assert _dropped(agent, "unstorable") == 0


def test_retrying_until_stored_needs_a_delay() -> None:
    with pytest.raises(ValueError, match="needs a delay"):
        WriteRetry((), until_stored=True)


async def test_a_batch_is_acknowledged_only_after_its_write_was_stored_or_given_up() -> None:
    agent, store = _agent(), FlakyStore(failures=len(DELAYS) + 2)  # the first batch is given up, the second stored
    meter = AgentMeter(agent)
    acked: list[bytes] = []
    acked_at_write: list[list[bytes]] = []

    async def write(records: list[int]) -> None:
        acked_at_write.append(list(acked))
        await store.write(records)

    async def handle(records: list[int]) -> int:
        await write_with_retry(meter, partial(write, records), len(records), WriteRetry(DELAYS))
        return 0

    async def ack(event: Event) -> None:
        acked.append(event.value)

    batches = _batches([b"1", b"x"], [b"2", b"3"])
    assert [r async for r in decode_batches_or_skip(batches, agent, _decode, handle, ack)] == [0, 0]

    # Every try of the first batch ran before any message was acknowledged; the second batch's with the first's.
    assert acked_at_write == [[]] * (len(DELAYS) + 1) + [[b"1", b"x"]] * 2
    assert store.written == [[2, 3]]
    assert acked == [b"1", b"x", b"2", b"3"]
    assert _dropped(agent, "store_unavailable") == 1
    assert _dropped(agent, "undecodable") == 1
