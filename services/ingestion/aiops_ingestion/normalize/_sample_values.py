"""Which sample values are stored: finite numbers, and the Prometheus stale marker."""

from __future__ import annotations

import math
import struct

__all__ = ["STALE_NAN", "is_stale_marker", "value_problem"]

_STALE_BITS = 0x7FF0000000000002
_STALE_BYTES = struct.pack("<Q", _STALE_BITS)

STALE_NAN: float = struct.unpack("<d", _STALE_BYTES)[0]
"""Prometheus' stale marker: a NaN with this exact bit pattern means "the series ended here".

It is kept bit for bit (numpy columns and the batch codec copy the bits), so the
stream layer can close the series instead of treating the NaN as a value.
"""


def is_stale_marker(value: float) -> bool:
    return struct.pack("<d", value) == _STALE_BYTES


def value_problem(value: float) -> str | None:
    """Why ``value`` is refused (NaN other than the stale marker, or an infinity), or None."""
    if math.isfinite(value) or is_stale_marker(value):
        return None
    if math.isnan(value):
        return "value NaN is not accepted (only the Prometheus stale marker NaN is)"
    return f"value {'+Inf' if value > 0 else '-Inf'} is not accepted"
