"""Which sample values are stored: finite numbers, and the Prometheus stale marker."""

from __future__ import annotations

import math

from aiops_common.schemas.metrics import STALE_NAN, is_stale_marker

__all__ = ["STALE_NAN", "is_stale_marker", "value_problem"]


def value_problem(value: float) -> str | None:
    """Why ``value`` is refused (NaN other than the stale marker, or an infinity), or None."""
    if math.isfinite(value) or is_stale_marker(value):
        return None
    if math.isnan(value):
        return "value NaN is not accepted (only the Prometheus stale marker NaN is)"
    return f"value {'+Inf' if value > 0 else '-Inf'} is not accepted"
