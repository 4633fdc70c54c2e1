"""The one loop an agent runs over its input topic: decode or skip, count, time, in ``/metrics``."""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol, TypeVar, cast

import faust
import structlog
from prometheus_client import Counter, Histogram

from aiops_common.observability import LogRateLimit
from aiops_common.schemas import SchemaError

__all__ = [
    "AGENT_BATCH_SECONDS",
    "AGENT_DROPPED",
    "AGENT_RECORDS_IN",
    "AGENT_RECORDS_OUT",
    "AgentMeter",
    "Delivered",
    "decode_batches_or_skip",
    "decode_or_skip",
    "install_agent",
    "install_batch_agent",
]

log = structlog.get_logger(__name__)

T = TypeVar("T")


class Delivered(Protocol):
    """What a batch of input is made of: a Faust event, whose ``value`` is the message."""

    @property
    def value(self) -> bytes: ...


E = TypeVar("E", bound=Delivered)

AGENT_RECORDS_IN = Counter("aiops_agent_records_in_total", "Messages an agent took from its input topic", ["agent"])
AGENT_RECORDS_OUT = Counter("aiops_agent_records_out_total", "Messages an agent published", ["agent"])
AGENT_DROPPED = Counter(
    "aiops_agent_dropped_records_total", "Input messages an agent skipped, by reason", ["agent", "reason"]
)
AGENT_BATCH_SECONDS = Histogram(
    "aiops_agent_batch_seconds",
    "Time an agent spent on one input message (each message is a batch of samples, rows or records)",
    ["agent"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

_log_limit = LogRateLimit(10.0)


class AgentMeter:
    """One agent's counters and timer, for loops that are not :func:`decode_or_skip` (checkpointed stages)."""

    def __init__(self, agent: str) -> None:
        self.agent = agent
        self._in = AGENT_RECORDS_IN.labels(agent)
        self._out = AGENT_RECORDS_OUT.labels(agent)
        self._seconds = AGENT_BATCH_SECONDS.labels(agent)

    def took(self, n: int = 1) -> None:
        self._in.inc(n)

    def sent(self, n: int = 1) -> None:
        if n:
            self._out.inc(n)

    def dropped(self, reason: str, error: str = "", n: int = 1) -> None:
        """Count ``n`` skipped messages under ``reason``; log it, at most once per 10 s per agent and reason."""
        AGENT_DROPPED.labels(self.agent, reason).inc(n)
        held = _log_limit(f"{self.agent}:{reason}")
        if held is not None:
            log.error("skipping input", agent=self.agent, reason=reason, error=error, skipped_since_last_log=held)

    @contextmanager
    def timed(self, n: int = 1) -> Iterator[None]:
        """Time the block; for ``n`` messages handled together, each is counted with its share of the time."""
        started = time.perf_counter()
        try:
            yield
        finally:
            share = (time.perf_counter() - started) / max(n, 1)
            for _ in range(n):
                self._seconds.observe(share)


async def decode_or_skip(
    stream: AsyncIterable[bytes],
    agent: str,
    decode: Callable[[bytes], T],
    handle: Callable[[T], Awaitable[int]],
) -> AsyncIterator[int]:
    """Decode each message of ``stream`` and hand it to ``handle``; yields what ``handle`` returns.

    ``handle`` returns how many messages it published (records out). A message that does
    not decode (:class:`~aiops_common.schemas.SchemaError`) is skipped: it is counted in
    ``aiops_agent_dropped_records_total{reason="undecodable"}`` and logged (rate-limited),
    so one bad producer neither stops the agent nor goes unseen. :func:`install_agent`
    makes an agent of it.
    """
    meter = AgentMeter(agent)
    async for value in stream:
        meter.took()
        with meter.timed():
            try:
                record = decode(value)
            except SchemaError as exc:
                meter.dropped("undecodable", str(exc))
                continue
            published = await handle(record)
        meter.sent(published)
        yield published


def install_agent(
    app: faust.App, topic: faust.TopicT, name: str, decode: Callable[[bytes], T], handle: Callable[[T], Awaitable[int]]
) -> None:
    """Add the Faust agent ``name`` that runs :func:`decode_or_skip` over ``topic`` with ``handle``."""

    @app.agent(topic, name=name)
    async def run(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        async for _ in decode_or_skip(stream, name, decode, handle):
            yield None


async def decode_batches_or_skip(
    batches: AsyncIterable[Sequence[E]],
    agent: str,
    decode: Callable[[bytes], T],
    handle: Callable[[list[T]], Awaitable[int]],
    ack: Callable[[E], Awaitable[object]],
) -> AsyncIterator[int]:
    """:func:`decode_or_skip` a batch of messages at a time, acknowledging them once ``handle`` returned.

    ``handle`` gets the decoded records of a batch in order (not called when none decoded)
    and returns how many messages it published. Every message of the batch, skipped ones
    included, is acknowledged only after it returned: a worker killed before has committed
    none of them, so they are read again. When ``handle`` raises, none is acknowledged and
    the error goes on.
    """
    meter = AgentMeter(agent)
    async for events in batches:
        meter.took(len(events))
        with meter.timed(len(events)):
            records: list[T] = []
            for event in events:
                try:
                    records.append(decode(event.value))
                except SchemaError as exc:
                    meter.dropped("undecodable", str(exc))
            published = await handle(records) if records else 0
        for event in events:
            await ack(event)
        meter.sent(published)
        yield published


def install_batch_agent(
    app: faust.App,
    topic: faust.TopicT,
    name: str,
    decode: Callable[[bytes], T],
    handle: Callable[[list[T]], Awaitable[int]],
    max_messages: int,
    within_s: float,
) -> None:
    """Add the Faust agent ``name`` that runs :func:`decode_batches_or_skip` over ``topic``.

    A batch is ``max_messages`` messages, or fewer: what arrived in a ``within_s`` wait
    (Faust's ``noack_take``). Its messages are acknowledged by hand after ``handle`` (Faust
    commits an offset once every agent on the topic acknowledged it and all before it).
    """

    @app.agent(topic, name=name)
    async def run(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        # noack_take is the concrete stream's (it yields events, to acknowledge), not in StreamT.
        taken = cast("faust.Stream[bytes]", stream).noack_take(max_messages, within=within_s)
        events = cast("AsyncIterable[Sequence[faust.EventT[bytes]]]", taken)  # typed as values; they are events
        async for _ in decode_batches_or_skip(events, name, decode, handle, stream.ack):
            yield None
