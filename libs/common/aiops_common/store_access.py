"""A command's one use of a store: open it by URL, run something on it, close it; unreachable is one line."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection
from typing import Protocol, TypeVar

__all__ = ["StoreUnreachableError", "with_store"]

T = TypeVar("T")


class _Closable(Protocol):
    async def close(self) -> None: ...


S = TypeVar("S", bound=_Closable)


class StoreUnreachableError(RuntimeError):
    """The store could not be opened, reached or read; the message is one line for people."""


def with_store(
    open_store: Callable[[str], S],
    url: str,
    use: Callable[[S], Awaitable[T]],
    what: str,
    driver_modules: Collection[str] = (),
) -> T:
    """Open ``url`` with ``open_store``, run ``use`` on it, close it, from synchronous code (a command).

    A bad URL (ValueError), a file or host that cannot be reached (OSError) or an exception of one of the
    store's client modules (``driver_modules``, e.g. ``sqlite3``) raises :class:`StoreUnreachableError`
    naming ``what`` and the URL; anything else is a bug and keeps its traceback.
    """

    async def run() -> T:
        store = open_store(url)
        try:
            return await use(store)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except Exception as exc:
        if isinstance(exc, OSError | ValueError) or type(exc).__module__.split(".")[0] in driver_modules:
            raise StoreUnreachableError(f"{what} {url}: {type(exc).__name__}: {exc}") from None
        raise
