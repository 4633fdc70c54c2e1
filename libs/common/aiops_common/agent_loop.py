"""The one loop an agent runs over its input topic: decode or skip, count, time, write with retries, in ``/metrics``."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar, cast

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
    "RETRY_DELAYS_S",
    "RETRY_THEN_DROP",
    "AgentMeter",
    "Delivered",
    "WriteRetry",
    "decode_batches_or_skip",
    "decode_or_skip",
    "install_agent",
    "install_batch_agent",
    "install_store_agent",
    "write_with_retry",
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


RETRY_DELAYS_S: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0)
"""Waits between the tries of one batch's write: about half a minute of a store being down (a restart, a
failover) is ridden out; past that the batch is counted as dropped and the agent goes on, so one dead
store does not hold the topic's other messages, nor crash the agent, forever."""


@dataclass(frozen=True)
class WriteRetry:
    """How a batch's store write that failed is tried again.

    An ``unavailable`` error (the store is down, locked or refused) is tried again after each
    of ``delays`` in turn. Past the last one the batch is given up and its messages counted in
    ``aiops_agent_dropped_records_total{reason="store_unavailable"}``; ``until_stored``, it is
    tried again every last delay for as long as it takes instead. An ``unstorable`` error is
    the data, not the store: the batch is dropped at once (``reason="unstorable"``). Any other
    error goes on to the caller. Each failure is logged as ``message`` at ``level``, at most
    once per 10 s per agent, with how many failures were held back.
    """

    delays: tuple[float, ...] = RETRY_DELAYS_S
    until_stored: bool = False
    unavailable: tuple[type[Exception], ...] = (Exception,)
    unstorable: tuple[type[Exception], ...] = (ValueError,)
    message: str = "store write failed, retrying"
    level: Literal["warning", "error"] = "warning"

    def __post_init__(self) -> None:
        if self.until_stored and not self.delays:
            raise ValueError("a write retried until stored needs a delay to wait between tries")


RETRY_THEN_DROP = WriteRetry()
"""Any error but a ``ValueError`` is the store's: retried for :data:`RETRY_DELAYS_S`, then counted as dropped."""


async def write_with_retry(
    meter: AgentMeter, write: Callable[[], Awaitable[None]], n: int, retry: WriteRetry = RETRY_THEN_DROP
) -> bool:
    """Run ``write`` until it succeeds, as ``retry`` says; False once the batch of ``n`` messages was dropped.

    Writes must be upserts: a retried batch rewrites what its first try may already have written.
    """
    attempt = 0
    while True:
        try:
            await write()
            return True
        except retry.unstorable as exc:
            meter.dropped("unstorable", str(exc), n=n)
            return False
        except retry.unavailable as exc:  # what the store's driver raised only shows in the log
            error = f"{type(exc).__name__}: {exc}"
            if attempt == len(retry.delays) and not retry.until_stored:
                meter.dropped("store_unavailable", error, n=n)
                return False
            wait_s = retry.delays[min(attempt, len(retry.delays) - 1)]
            held = _log_limit(f"{meter.agent}:retry")
            if held is not None:
                say = log.error if retry.level == "error" else log.warning
                say(
                    retry.message,
                    agent=meter.agent,
                    messages=n,
                    attempt=attempt + 1,
                    retry_in_s=wait_s,
                    error=error,
                    failures_since_last_log=held,
                )
        await asyncio.sleep(wait_s)
        attempt += 1


def install_store_agent(
    app: faust.App,
    topic: faust.TopicT,
    name: str,
    decode: Callable[[bytes], T],
    write: Callable[[list[T]], Awaitable[None]],
    max_messages: int,
    within_s: float,
    retry: WriteRetry = RETRY_THEN_DROP,
) -> None:
    """Add the Faust agent ``name`` that writes the decoded messages of ``topic`` to a store, a batch at a time.

    :func:`install_batch_agent` with one ``write`` of a batch's records, retried as ``retry``
    says (:func:`write_with_retry`). The batch's messages are acknowledged only once the write
    is done or given up with its messages counted as dropped: a worker killed mid-batch (or
    stopped while a write is being retried) reads the batch again, so ``write`` must be an
    upsert. (Faust's plain ``take`` acknowledges a batch when the loop asks for the next one
    or is closed: after a write that raised or was cancelled too.)
    """
    meter = AgentMeter(name)

    async def handle(records: list[T]) -> int:
        await write_with_retry(meter, functools.partial(write, records), len(records), retry)
        return 0  # a store agent publishes nothing

    install_batch_agent(app, topic, name, decode, handle, max_messages, within_s)
