"""A worker's C heap: freed memory handed back to the system, and the heap's size on ``/metrics`` (glibc).

Windows, detection batches and store writes allocate and free numpy buffers of many sizes all the time. glibc's
allocator raises its mmap threshold each time a large block is freed, so later large buffers come from the heap
arenas, and the free space between live blocks is kept by the process: its RSS climbs while the memory in use
stays flat (160 MB of free heap kept 8 minutes into a soak, docs/soak.md). :func:`configure_heap` fixes the
threshold (large buffers get pages of their own, unmapped when freed) and bounds the arenas threads create;
:class:`HeapTrimmer` hands the free pages inside the arenas back every few seconds (``malloc_trim``) and exports the
heap's figures. On a C library other than glibc (macOS, musl) both do nothing and say so once.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import mode
import structlog
from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["HeapFigures", "HeapTrimmer", "configure_heap", "heap_figures", "trim_heap"]

log = structlog.get_logger(__name__)

_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _glibc() -> Any | None:
    """The C library when it is glibc with ``mallinfo2`` (2.33 and later), else None."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    if not all(hasattr(libc, f) for f in ("mallopt", "malloc_trim", "mallinfo2")):
        return None
    libc.mallinfo2.restype = _MallInfo2
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    return libc


_LIBC = _glibc()


@dataclass(frozen=True, slots=True)
class HeapFigures:
    """The C heap as ``mallinfo2`` reports it, in bytes."""

    in_use: int
    """Allocated and not yet freed, in the arenas and in blocks of their own."""
    free: int
    """Freed and kept inside the arenas (what :func:`trim_heap` can hand back a page at a time)."""
    mapped: int
    """Blocks with pages of their own (at or above the mmap threshold); their pages go back when freed."""


def heap_figures() -> HeapFigures | None:
    """The heap's figures now; None where the C library is not glibc."""
    if _LIBC is None:
        return None
    info = _LIBC.mallinfo2()
    return HeapFigures(in_use=info.uordblks + info.hblkhd, free=info.fordblks, mapped=info.hblkhd)


def configure_heap(mmap_threshold_bytes: int, arena_max: int) -> bool:
    """Fix glibc's mmap threshold and bound its arenas (0 leaves either as it is); False where not glibc.

    Call it before threads start: the arena bound applies to arenas created afterwards.
    """
    for what, value in (("an mmap threshold", mmap_threshold_bytes), ("an arena bound", arena_max)):
        if not 0 <= value < 1 << 31:
            raise ValueError(f"glibc refused {what} of {value}: it takes 0 to {(1 << 31) - 1}")
    if _LIBC is None:
        log.info("heap tuning skipped: the C library is not glibc")
        return False
    if mmap_threshold_bytes > 0 and not _LIBC.mallopt(_M_MMAP_THRESHOLD, mmap_threshold_bytes):
        raise ValueError(f"glibc refused an mmap threshold of {mmap_threshold_bytes} bytes (at most 32 MB)")
    if arena_max > 0 and not _LIBC.mallopt(_M_ARENA_MAX, arena_max):
        raise ValueError(f"glibc refused an arena bound of {arena_max}")
    return True


def trim_heap() -> bool:
    """Hand the free pages of every arena back to the system; True when any went back, False also where not glibc."""
    return bool(_LIBC is not None and _LIBC.malloc_trim(0))


class _HeapCollector(Collector):
    """``aiops_process_heap_bytes{state}`` and the trims' count and time, read at scrape time."""

    def __init__(self) -> None:
        self.trims = 0
        self.trim_seconds = 0.0

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        figures = heap_figures()
        if figures is None:
            return
        heap = GaugeMetricFamily(
            "aiops_process_heap_bytes",
            "The C heap (glibc): in_use allocated, free kept inside the arenas, mapped in blocks of their own",
            labels=["state"],
        )
        heap.add_metric(["in_use"], figures.in_use)
        heap.add_metric(["free"], figures.free)
        heap.add_metric(["mapped"], figures.mapped)
        yield heap
        yield CounterMetricFamily(
            "aiops_process_heap_trims", "Times the heap's free pages were handed back to the system", value=self.trims
        )
        yield CounterMetricFamily(
            "aiops_process_heap_trim_seconds", "Time spent handing the heap's free pages back", value=self.trim_seconds
        )


class HeapTrimmer(mode.Service):
    """Every ``interval_s``, hands the heap's free pages back (in a thread: the event loop goes on meanwhile)."""

    def __init__(self, interval_s: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.interval_s = interval_s
        self.collector = _HeapCollector()

    async def on_start(self) -> None:
        REGISTRY.register(self.collector)

    async def on_stop(self) -> None:
        REGISTRY.unregister(self.collector)

    @mode.Service.task
    async def _trim(self) -> None:
        if self.interval_s <= 0 or _LIBC is None:
            return
        while not self.should_stop:
            await self.sleep(self.interval_s)
            started = time.perf_counter()
            await asyncio.to_thread(trim_heap)  # ctypes lets go of the interpreter lock during the call
            self.collector.trims += 1
            self.collector.trim_seconds += time.perf_counter() - started
