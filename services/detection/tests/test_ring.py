"""The ring buffers series histories are kept in: a ``deque(maxlen=...)`` of numbers, in one growing array."""

from __future__ import annotations

import copy
import pickle
from collections import deque

import numpy as np
import pytest
from aiops_detection.detectors.ring import FIRST_CAPACITY, Ring

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("maxlen", [0, 1, 5, FIRST_CAPACITY - 1, FIRST_CAPACITY, FIRST_CAPACITY + 1, 300])
def test_holds_what_a_bounded_deque_holds_at_every_step(maxlen: int) -> None:
    rng = np.random.default_rng(maxlen)
    ring = Ring(maxlen)
    expected: deque[float] = deque(maxlen=maxlen)
    for x in rng.normal(size=3 * maxlen + 7).tolist():
        ring.append(x)
        expected.append(x)
        assert len(ring) == len(expected)
        assert ring.tolist() == list(expected)
        for n in (0, 1, 9, maxlen, maxlen + 3):
            assert ring.tail(n).tolist() == (list(expected)[-n:] if n else [])


def test_grows_by_doubling_from_a_small_first_allocation_up_to_maxlen_only() -> None:
    ring = Ring(1000, np.int64)
    assert ring.capacity == FIRST_CAPACITY
    capacities = set()
    for x in range(5000):
        ring.append(x)
        capacities.add(ring.capacity)
    assert sorted(capacities) == [64, 128, 256, 512, 1000]
    assert ring.array().dtype == np.int64
    assert ring.tolist() == list(range(4000, 5000))


@pytest.mark.parametrize("appended", [0, 10, 100, 1000, 1234])
def test_a_pickle_or_copy_holds_the_values_only_and_continues_the_same(appended: int) -> None:
    ring = Ring(500)
    ring.extend(float(x) for x in range(appended))
    blob = pickle.dumps(ring, protocol=5)
    assert len(blob) < 8 * min(appended, 500) + 200  # the free slots are not written
    for restored in (pickle.loads(blob), copy.deepcopy(ring)):
        assert restored.tolist() == ring.tolist()
        assert restored.maxlen == 500
        for x in range(appended, appended + 700):
            restored.append(float(x))
            ring.append(float(x))
            assert restored.tail(3).tolist() == ring.tail(3).tolist()
        assert restored.tolist() == ring.tolist()
        ring = pickle.loads(blob)


def test_a_negative_maxlen_is_refused() -> None:
    with pytest.raises(ValueError, match="maxlen"):
        Ring(-1)
