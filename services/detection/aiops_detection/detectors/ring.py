"""Fixed-capacity ring buffers of numbers in one numpy array: a series' history at 8 bytes a value.

A ``deque`` of Python floats costs about 32 bytes a value (a pointer and a float
object) and an ``(end_ms, value)`` tuple about 120; a series state that keeps a day
of windows and weeks of model history grew by 150-230 bytes every window for a day
(docs/soak.md). A :class:`Ring` keeps the same last ``maxlen`` values in one float64
or int64 array: 8 bytes a value, and no new objects once it is full.

Capacity is not allocated whole up front. At one window a minute tier 3 keeps up to
40,320 values (four weekly cycles), tier 2 8,064 and the catch-up history 1,440 windows:
about 410 KB a series, 8 GB at 20,000 series, most of it never written by series that
live for minutes (a pod's short-lived series). The first allocation is ``FIRST_CAPACITY`` values
(512 bytes) and the array doubles when full, up to ``maxlen``: at most 2 x 8 bytes a
value while it grows (8 on average over a doubling), flat once ``maxlen`` is reached,
and about 11 copies over a ring's whole life. A pickle holds only the values, oldest
first, so a checkpoint does not carry the free slots.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["FIRST_CAPACITY", "Ring"]

FIRST_CAPACITY = 64
"""Values allocated for a new ring (or ``maxlen`` if smaller); the array doubles from there."""


def _capacity(size: int, maxlen: int) -> int:
    """The capacity a ring holding ``size`` values has in its growth sequence (64, 128, ... capped at maxlen)."""
    capacity = min(FIRST_CAPACITY, maxlen)
    while capacity < size:
        capacity = min(2 * capacity, maxlen)
    return capacity


class Ring:
    """The last ``maxlen`` numbers appended, oldest first, like ``deque(maxlen=maxlen)`` of one numpy dtype."""

    __slots__ = ("_data", "_size", "_start", "maxlen")

    def __init__(self, maxlen: int, dtype: npt.DTypeLike = np.float64) -> None:
        if maxlen < 0:
            raise ValueError(f"maxlen must not be negative, got {maxlen}")
        self.maxlen = maxlen
        self._data: npt.NDArray[Any] = np.empty(_capacity(0, maxlen), dtype=dtype)
        self._start = 0  # slot of the oldest value; moves only once the ring is full at maxlen
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def capacity(self) -> int:
        """Values the array holds now (grows to ``maxlen``)."""
        return int(self._data.size)

    def append(self, x: float) -> None:
        capacity = self._data.size
        if self._size < capacity:
            self._data[self._start + self._size - (capacity if self._start + self._size >= capacity else 0)] = x
            self._size += 1
        elif capacity < self.maxlen:
            self._resize(min(2 * capacity, self.maxlen))
            self._data[self._size] = x
            self._size += 1
        elif capacity:  # full at maxlen: the oldest goes
            self._data[self._start] = x
            self._start = self._start + 1 if self._start + 1 < capacity else 0

    def extend(self, values: Iterable[float]) -> None:
        for x in values:
            self.append(x)

    def _resize(self, capacity: int) -> None:
        grown = np.empty(capacity, dtype=self._data.dtype)
        grown[: self._size] = self.array()
        self._data = grown
        self._start = 0

    def array(self) -> npt.NDArray[Any]:
        """The values, oldest first (a copy)."""
        end = self._start + self._size
        if end <= self._data.size:
            return self._data[self._start : end].copy()
        return np.concatenate((self._data[self._start :], self._data[: end - self._data.size]))

    def tail(self, n: int) -> npt.NDArray[Any]:
        """The last ``n`` values (all of them when fewer), oldest first (a copy)."""
        n = max(0, min(n, self._size))
        first = self._start + self._size - n
        capacity = self._data.size
        if first >= capacity:
            first -= capacity
        if first + n <= capacity:
            return self._data[first : first + n].copy()
        return np.concatenate((self._data[first:], self._data[: first + n - capacity]))

    def tolist(self) -> list[Any]:
        """The values as Python numbers, oldest first."""
        return list(self.array().tolist())

    def __getstate__(self) -> tuple[int, str, npt.NDArray[Any]]:
        return self.maxlen, self._data.dtype.str, self.array()

    def __setstate__(self, state: tuple[int, str, npt.NDArray[Any]]) -> None:
        maxlen, dtype, values = state
        self.maxlen = maxlen
        self._data = np.empty(_capacity(values.size, maxlen), dtype=np.dtype(dtype))
        self._data[: values.size] = values
        self._start = 0
        self._size = int(values.size)

    def __repr__(self) -> str:
        return f"Ring(maxlen={self.maxlen}, size={self._size}, dtype={self._data.dtype})"
