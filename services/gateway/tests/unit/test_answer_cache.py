"""The list answer cache: kept for its time, made once by concurrent misses, emptied by a change."""

from __future__ import annotations

import asyncio

import pytest
from aiops_gateway.answer_cache import AnswerCache

pytestmark = pytest.mark.unit


async def test_concurrent_misses_make_the_answer_once_and_later_asks_are_served_from_the_cache() -> None:
    cache = AnswerCache(ttl_s=60.0)
    made = 0
    release = asyncio.Event()

    async def make() -> bytes:
        nonlocal made
        made += 1
        await release.wait()
        return b"page"

    waiting = [asyncio.create_task(cache.get_or_make("q", make)) for _ in range(20)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*waiting) == [b"page"] * 20
    assert await cache.get_or_make("q", make) == b"page"
    assert made == 1
    assert await cache.get_or_make("other", make) == b"page" and made == 2


async def test_a_failed_make_reaches_every_waiter_and_is_not_kept() -> None:
    cache = AnswerCache(ttl_s=60.0)
    release = asyncio.Event()

    async def fail() -> bytes:
        await release.wait()
        raise TimeoutError("store too slow")

    waiting = [asyncio.create_task(cache.get_or_make("q", fail)) for _ in range(3)]
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(r, TimeoutError) for r in results)

    async def works() -> bytes:
        return b"ok"

    assert await cache.get_or_make("q", works) == b"ok"


async def test_an_answer_made_while_the_cache_was_emptied_is_not_kept() -> None:
    cache = AnswerCache(ttl_s=60.0)
    calls = 0

    async def make() -> bytes:
        nonlocal calls
        calls += 1
        cache.clear()  # a change published while the page was being read: the page may predate it
        return f"v{calls}".encode()

    assert await cache.get_or_make("q", make) == b"v1"
    assert await cache.get_or_make("q", make) == b"v2"


async def test_no_time_to_keep_means_every_ask_is_made() -> None:
    cache = AnswerCache(ttl_s=0.0)
    calls = 0

    async def make() -> bytes:
        nonlocal calls
        calls += 1
        return b"x"

    for _ in range(3):
        await cache.get_or_make("q", make)
    assert calls == 3
