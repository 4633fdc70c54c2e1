"""``eventually()``: wait for state (a store row, a committed offset, a topic's contents) to hold, within a budget."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar, overload

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["EventuallyTimeoutError", "TestTimingSettings", "eventually", "scaled"]

T = TypeVar("T")


class TestTimingSettings(BaseSettings):
    """How long tests wait for state (``AIOPS_TEST_TIMEOUT_SCALE``)."""

    __test__ = False  # a settings class, not a test class, wherever a test module imports it

    model_config = SettingsConfigDict(env_prefix="AIOPS_", env_file=".env", frozen=True, extra="ignore")

    test_timeout_scale: Annotated[float, Field(gt=0)] = 1.0
    """Every ``eventually()`` budget is multiplied by this: raise it on a slow or loaded machine."""


class EventuallyTimeoutError(AssertionError):
    """The state waited for did not hold within the (scaled) budget; says what and the last value seen."""


def scaled(timeout_s: float, settings: TestTimingSettings | None = None) -> float:
    """``timeout_s`` times ``AIOPS_TEST_TIMEOUT_SCALE``."""
    return timeout_s * (settings or TestTimingSettings()).test_timeout_scale


@overload
async def eventually(
    check: Callable[[], Awaitable[T | None]],
    timeout: float = ...,  # noqa: ASYNC109
    what: str = ...,
    interval: float = ...,
    settings: TestTimingSettings | None = ...,
) -> T: ...


@overload
async def eventually(
    check: Callable[[], T | None],
    timeout: float = ...,  # noqa: ASYNC109
    what: str = ...,
    interval: float = ...,
    settings: TestTimingSettings | None = ...,
) -> T: ...


async def eventually(
    check: Callable[[], Any],
    timeout: float = 30.0,  # noqa: ASYNC109  # a polling budget, scaled; not a cancellation scope
    what: str = "",
    interval: float = 0.1,
    settings: TestTimingSettings | None = None,
) -> Any:
    """Call ``check`` until it returns a truthy value, and return that value.

    ``check`` is a plain or an async function. A falsy result, or an ``AssertionError``
    it raises, means "not yet"; any other exception ends the wait at once (so a check
    can fail fast, e.g. when the process it waits on has died). After ``timeout``
    seconds, scaled by ``AIOPS_TEST_TIMEOUT_SCALE``, it raises
    :class:`EventuallyTimeoutError` naming ``what`` and the last value seen.

    >>> import asyncio
    >>> seen = []
    >>> asyncio.run(eventually(lambda: seen.append(1) or len(seen) >= 3, timeout=5, interval=0))
    True
    >>> asyncio.run(eventually(lambda: 0, timeout=0.05, what="a non-zero count"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    aiops_common...EventuallyTimeoutError: gave up waiting for a non-zero count after 0.05s (...); last value: 0
    """
    scale = (settings or TestTimingSettings()).test_timeout_scale
    budget = timeout * scale
    deadline = time.monotonic() + budget
    last = "<not called>"
    while True:
        try:
            result = check()
            value = await result if inspect.isawaitable(result) else result
        except AssertionError as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if value:
                return value
            last = repr(value)
        if time.monotonic() >= deadline:
            shown = last if len(last) <= 2000 else last[:2000] + "..."
            raise EventuallyTimeoutError(
                f"gave up waiting for {what or getattr(check, '__name__', 'the check')} after {budget:g}s"
                f" ({timeout:g}s x {scale:g}); last value: {shown}"
            )
        await asyncio.sleep(interval)
