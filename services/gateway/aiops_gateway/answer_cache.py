"""Recent answers of the list routes, kept for ``AIOPS_GATEWAY_LIST_CACHE_S``: a page of incidents that fifty
screens ask for each second is read and encoded once.

Every caller of a list sees the same documents (roles decide what one may do, not what one may read), so an
answer is kept by its path and query alone, after the caller was authenticated. The live feed empties the
cache whenever an incident or a root-cause result is published, so a change shows at once in this replica; the
time bound covers what the feed cannot see (a document written straight to the store, a feed that is down).
"""

from __future__ import annotations

import time

from prometheus_client import Counter

__all__ = ["AnswerCache"]

LOOKUPS = Counter("aiops_gateway_answer_cache_total", "List answers asked of the cache, by result", ["result"])


class AnswerCache:
    def __init__(self, ttl_s: float, max_entries: int = 1024) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._answers: dict[str, tuple[float, bytes]] = {}

    def get(self, key: str) -> bytes | None:
        if self.ttl_s <= 0:
            return None
        kept = self._answers.get(key)
        if kept is None or time.monotonic() - kept[0] > self.ttl_s:
            LOOKUPS.labels("miss").inc()
            return None
        LOOKUPS.labels("hit").inc()
        return kept[1]

    def put(self, key: str, answer: bytes) -> None:
        if self.ttl_s <= 0:
            return
        if len(self._answers) >= self.max_entries:
            self._answers.clear()  # bounded; a burst of distinct queries simply starts over
        self._answers[key] = (time.monotonic(), answer)

    def clear(self) -> None:
        self._answers.clear()
