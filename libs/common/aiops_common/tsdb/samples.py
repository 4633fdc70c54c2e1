"""Sample-level facts every TSDB backend shares: the Prometheus stale marker."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["STALE_NAN_BITS", "stale_mask"]

STALE_NAN_BITS = 0x7FF0000000000002
"""Prometheus' staleness marker: a NaN with exactly these bits ends a series."""


def stale_mask(values: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    bits = np.ascontiguousarray(values, dtype=np.float64).view(np.uint64)
    mask: npt.NDArray[np.bool_] = bits == np.uint64(STALE_NAN_BITS)
    return mask
