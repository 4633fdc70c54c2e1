"""The agents' one way of riding out a store or broker that is away: try again with backoff, then count a drop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import structlog
from aiops_common.agent_loop import AgentMeter

__all__ = ["RETRY_DELAYS_S", "retried"]

log = structlog.get_logger(__name__)

T = TypeVar("T")

RETRY_DELAYS_S: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0)
"""About half a minute of a store or the broker being away is ridden out."""


async def retried(
    meter: AgentMeter, what: str, call: Callable[[], Awaitable[T]], delays: Sequence[float] = RETRY_DELAYS_S
) -> T | None:
    """``call()``'s result; None (counted as dropped, reason ``unavailable``) once every try failed. Each try
    must be safe to repeat: the engine's writes are versioned creates and updates."""
    for attempt in range(len(delays) + 1):
        try:
            return await call()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if attempt == len(delays):
                meter.dropped("unavailable", f"{what}: {type(exc).__name__}: {exc}")
                return None
            log.warning("failed, retrying", agent=meter.agent, what=what, attempt=attempt + 1, error=repr(exc))
            await asyncio.sleep(delays[attempt])
    return None
