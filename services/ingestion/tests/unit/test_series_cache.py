"""The series cache: hits, misses, its bound, and when it forgets."""

from __future__ import annotations

import pytest
from aiops_common.schemas import SeriesMeta
from aiops_ingestion.normalize import Enricher, Limits, SeriesCache

pytestmark = pytest.mark.unit


def meta(i: int) -> SeriesMeta:
    return SeriesMeta("up", {"i": str(i)})


def test_a_stored_series_is_found_by_its_key_and_nothing_else_is() -> None:
    cache = SeriesCache(10)
    stored = meta(1)
    cache.put(b"labels-1", stored)
    assert cache.get(b"labels-1") is stored
    assert cache.get(b"labels-2") is None
    assert len(cache) == 1


def test_the_cache_never_holds_more_than_its_size() -> None:
    cache = SeriesCache(10)
    for i in range(1_000):
        cache.put(i, meta(i))
        assert len(cache) <= 10
    assert cache.get(999) is not None and cache.get(0) is None


def test_series_sent_every_generation_stay_while_new_ones_churn() -> None:
    cache = SeriesCache(100)
    hot = {f"hot-{i}": meta(i) for i in range(20)}
    for key, value in hot.items():
        cache.put(key, value)
    for i in range(2_000):
        cache.put(f"churn-{i}", meta(i))
        if i % 10 == 0:  # each hot series is read at least once per generation of 50 new ones
            for key, value in hot.items():
                assert cache.get(key) is value


def test_binding_other_limits_or_another_enricher_empties_the_cache() -> None:
    cache = SeriesCache(10)
    cache.bind(Limits(), Enricher())
    cache.put(b"k", meta(1))
    cache.bind(Limits(), Enricher())  # equal settings: kept
    assert cache.get(b"k") is not None
    cache.bind(Limits(max_label_value_length=10), Enricher())
    assert cache.get(b"k") is None
    cache.put(b"k", meta(1))
    cache.bind(Limits(max_label_value_length=10), Enricher.from_mapping({"api": {"team": "a"}}))
    assert len(cache) == 0


def test_a_cache_needs_room_for_two_series() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        SeriesCache(1)
