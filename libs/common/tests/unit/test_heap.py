"""The C heap's free pages go back to the system on a trim, and its figures follow allocations (glibc)."""

from __future__ import annotations

import os

import pytest
from aiops_common.heap import configure_heap, heap_figures, trim_heap

pytestmark = pytest.mark.unit

needs_glibc = pytest.mark.skipif(heap_figures() is None, reason="the C library is not glibc")


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@needs_glibc
def test_a_trim_hands_back_the_free_space_between_live_blocks() -> None:
    # 20,000 blocks of 10 kB (below any mmap threshold: they come from the heap), then every one freed but each
    # hundredth: the heap's top stays in use, so glibc's own trimming at the top cannot give the space back.
    blocks = [bytearray(10_000) for _ in range(20_000)]
    before = heap_figures()
    assert before is not None
    kept = blocks[99::100]
    del blocks
    freed = heap_figures()
    assert freed is not None and freed.free - before.free > 150e6
    rss = _rss_bytes()
    assert trim_heap()
    assert rss - _rss_bytes() > 100e6  # about 198 MB of whole free pages went back
    assert len(kept) == 200


@needs_glibc
def test_a_fixed_mmap_threshold_gives_large_blocks_pages_of_their_own() -> None:
    # glibc's own start value, fixed. Left moving, freeing a large block raises the threshold to that block's size,
    # and the next large block that no free space fits grows the heap instead of getting pages of its own.
    assert configure_heap(131_072, 0)
    start = heap_figures()
    assert start is not None
    larger = bytearray(start.free + 8_000_000)  # more than the heap holds free: pages of its own
    del larger  # a moving threshold would now be this block's size
    before = heap_figures()
    assert before is not None
    size = before.free + 1_000_000  # smaller than the block just freed, larger than any free space in the heap
    block = bytearray(size)
    after = heap_figures()
    assert after is not None and after.mapped - before.mapped >= size
    assert len(block) == size


def test_settings_out_of_range_are_refused_before_reaching_glibc() -> None:
    with pytest.raises(ValueError, match="mmap threshold"):
        configure_heap(1 << 31, 0)
    with pytest.raises(ValueError, match="arena bound"):
        configure_heap(0, -1)
