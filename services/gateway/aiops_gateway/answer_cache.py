"""Recent answers of the list routes, kept for ``AIOPS_GATEWAY_LIST_CACHE_S``: a page of incidents that fifty
screens ask for each second is read and encoded once.

Every caller of a list sees the same documents (roles decide what one may do, not what one may read), so an
answer is kept by its path and query alone, after the caller was authenticated. The live feed empties the
cache whenever an incident or a root-cause result is published, so a change shows at once in this replica; the
time bound covers what the feed cannot see (a document written straight to the store, a feed that is down).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from prometheus_client import Counter

__all__ = ["AnswerCache"]

LOOKUPS = Counter("aiops_gateway_answer_cache_total", "List answers asked of the cache, by result", ["result"])


class AnswerCache:
    """Answers by key for ``ttl_s``; concurrent misses of one key make the answer once (the others wait for it),
    so an answer expiring under fifty clients costs one store read, not fifty queued behind each other."""

    def __init__(self, ttl_s: float, max_entries: int = 1024) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._answers: dict[str, tuple[float, bytes]] = {}
        self._making: dict[str, asyncio.Future[bytes]] = {}
        self._generation = 0
        """One more each time the cache is emptied: an answer made across an emptying is not kept."""

    async def get_or_make(self, key: str, make: Callable[[], Awaitable[bytes]]) -> bytes:
        if self.ttl_s <= 0:
            return await make()
        kept = self._answers.get(key)
        if kept is not None and time.monotonic() - kept[0] <= self.ttl_s:
            LOOKUPS.labels("hit").inc()
            return kept[1]
        pending = self._making.get(key)
        if pending is not None:
            LOOKUPS.labels("joined").inc()
            return await asyncio.shield(pending)
        LOOKUPS.labels("miss").inc()
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._making[key] = future
        generation = self._generation
        try:
            answer = await make()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it; nobody waiting is not an error
            raise
        finally:
            self._making.pop(key, None)
        future.set_result(answer)
        if generation == self._generation:  # not emptied meanwhile: the answer may predate the change
            if len(self._answers) >= self.max_entries:
                self._answers.clear()  # bounded; a burst of distinct queries simply starts over
            self._answers[key] = (time.monotonic(), answer)
        return answer

    def clear(self) -> None:
        self._answers.clear()
        self._generation += 1
