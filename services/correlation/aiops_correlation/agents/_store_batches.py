"""The loop the knowledge agents share: take a topic's messages in batches and write them to a store, retrying."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

import faust
import structlog
from aiops_common.agent_loop import AgentMeter
from aiops_common.observability import LogRateLimit
from aiops_common.schemas import SchemaError

__all__ = ["RETRY_DELAYS_S", "install_store_agent", "write_with_retry"]

log = structlog.get_logger(__name__)

T = TypeVar("T")

RETRY_DELAYS_S: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0)
"""Waits between the tries of one batch's write: about half a minute of a store being down (a restart, a
failover) is ridden out; past that the batch is counted as dropped and the agent goes on, so one dead
store does not hold the topic's other messages, nor crash the agent, forever."""

_log_limit = LogRateLimit(10.0)


async def write_with_retry(
    meter: AgentMeter,
    write: Callable[[], Awaitable[None]],
    n: int,
    delays: Sequence[float] = RETRY_DELAYS_S,
) -> bool:
    """Run ``write`` until it succeeds, waiting ``delays`` between tries; False once they are spent.

    Writes must be upserts (a retried batch rewrites what its first try may already have written). Giving up
    counts the ``n`` records in ``aiops_agent_dropped_records_total{reason="store_unavailable"}``.
    A ``ValueError`` is the data, not the store: the batch is dropped at once (``reason="unstorable"``).
    """
    for attempt in range(len(delays) + 1):
        try:
            await write()
            return True
        except ValueError as exc:
            meter.dropped("unstorable", str(exc), n=n)
            return False
        except Exception as exc:  # any driver's error: the store is down or refused; what it is only shows in the log
            if attempt == len(delays):
                meter.dropped("store_unavailable", f"{type(exc).__name__}: {exc}", n=n)
                return False
            held = _log_limit(meter.agent)
            if held is not None:
                log.warning(
                    "store write failed, retrying",
                    agent=meter.agent,
                    attempt=attempt + 1,
                    retry_in_s=delays[attempt],
                    error=f"{type(exc).__name__}: {exc}",
                    failures_since_last_log=held,
                )
            await asyncio.sleep(delays[attempt])
    raise AssertionError("unreachable")  # pragma: no cover


def install_store_agent(
    app: faust.App,
    topic: faust.TopicT,
    name: str,
    decode: Callable[[bytes], T],
    write: Callable[[list[T]], Awaitable[None]],
    batch: int = 500,
    within_s: float = 0.5,
) -> None:
    """Add the Faust agent ``name``: up to ``batch`` messages of ``topic`` (or what came within ``within_s``),
    decoded (an undecodable one is counted and skipped), then written by one ``write`` with retries.

    Offsets move on only once the batch's write is done or given up, so a worker killed mid-batch reads it
    again; ``write`` must be an upsert.
    """
    meter = AgentMeter(name)

    @app.agent(topic, name=name)
    async def run(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        async for values in stream.take(batch, within=within_s):
            meter.took(len(values))
            with meter.timed():
                records: list[T] = []
                for value in values:
                    try:
                        records.append(decode(value))
                    except SchemaError as exc:
                        meter.dropped("undecodable", str(exc))
                if records:
                    await write_with_retry(meter, functools.partial(write, records), len(records))
            yield None
