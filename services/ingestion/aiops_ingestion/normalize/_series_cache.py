"""The series a server has already validated and normalized, keyed by the label bytes they arrived as."""

from __future__ import annotations

import functools
import operator
from collections.abc import Hashable, Sequence

from aiops_common.schemas import SeriesMeta

from aiops_ingestion.normalize._enricher import Enricher
from aiops_ingestion.normalize._limits import Limits

__all__ = ["SeriesCache"]

_is_none = functools.partial(operator.is_, None)


class SeriesCache:
    """A bounded map from a series' raw labels to its validated, normalized and enriched SeriesMeta.

    A Prometheus server sends the same series every scrape interval, label bytes
    for label bytes. Validating, normalizing and enriching them once, and then
    finding the result by those bytes, turns the per-series work of a request into
    one dictionary lookup. Only series that passed validation are stored: a bad
    series is checked, and refused, every time it is sent. Sample times and values
    are never cached; they are checked for every sample.

    The bound is kept with two generations rather than an exact LRU, so a hit is a
    plain dict lookup: new entries go into the young generation; when it holds
    ``size // 2`` the old one is dropped and the young one becomes old; a hit in the
    old generation moves the entry back to the young one. Series sent at least once
    per generation stay cached as long as they number at most ``size // 2``; there
    are never more than ``size`` entries.

    What is stored depends on the limits and the enricher, so the cache remembers
    the pair it was filled under and empties itself when called with another.
    """

    __slots__ = ("_config", "_old", "_young", "_young_size", "size")

    def __init__(self, size: int) -> None:
        if size < 2:
            raise ValueError(f"a series cache needs room for at least 2 series, not {size}")
        self.size = size
        self._young_size = size // 2
        self._young: dict[Hashable, SeriesMeta] = {}
        self._old: dict[Hashable, SeriesMeta] = {}
        self._config: tuple[Limits, Enricher] | None = None

    def __len__(self) -> int:
        return len(self._young) + len(self._old)

    def bind(self, limits: Limits, enricher: Enricher) -> None:
        """Start using the cache for series checked against ``limits`` and enriched by ``enricher``."""
        config = self._config
        if config is None or not (config[0] == limits and config[1] == enricher):
            self.clear()
            self._config = (limits, enricher)

    def clear(self) -> None:
        self._young = {}
        self._old = {}

    def get(self, key: Hashable) -> SeriesMeta | None:
        meta = self._young.get(key)
        if meta is None:
            meta = self._old.pop(key, None)
            if meta is None:
                return None
            self.put(key, meta)
        return meta

    def get_many(self, keys: Sequence[Hashable]) -> list[SeriesMeta | None]:
        """:meth:`get` of each key, in order; the common case, every key young, runs in C."""
        found: list[SeriesMeta | None] = list(map(self._young.get, keys))
        # `None in found` would call SeriesMeta.__eq__ on every entry.
        if self._old and any(map(_is_none, found)):
            found = [meta if meta is not None else self.get(key) for key, meta in zip(keys, found, strict=True)]
        return found

    def put(self, key: Hashable, meta: SeriesMeta) -> None:
        young = self._young
        if len(young) >= self._young_size:
            self._old = young
            young = self._young = {}
        young[key] = meta
