"""Deterministic record ids: the same record delivered or computed again gets the same id."""

from __future__ import annotations

import hashlib

__all__ = ["record_id"]


def record_id(kind_prefix: str, *parts: str | int | float) -> str:
    """``<kind_prefix>-`` and 24 hex digits of the SHA-256 of the parts, NUL-separated.

    NUL cannot occur in a label value or series key, so different part lists never
    join into the same text.

    >>> record_id("an", 'up{job="api"}', 0, 60_000)
    'an-5dab06e1894bd9f62bb0eb22'
    >>> record_id("an", "a", 1) == record_id("an", "a", 1) != record_id("an", "a", 2)
    True
    """
    text = "\x00".join(str(part) for part in parts)
    return f"{kind_prefix}-{hashlib.sha256(text.encode()).hexdigest()[:24]}"
