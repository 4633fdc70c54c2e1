"""Times in query parameters: ``30m``, ``6h``, ``7d`` back from now, an ISO-8601 instant, or seconds since the epoch.

>>> now = datetime(2026, 1, 2, tzinfo=UTC)
>>> parse_instant("6h", now).isoformat(), parse_instant("2026-01-01T12:00", now).isoformat()
('2026-01-01T18:00:00+00:00', '2026-01-01T12:00:00+00:00')
>>> parse_instant("1767225600", now, unix=True).isoformat()
'2026-01-01T00:00:00+00:00'
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

__all__ = ["parse_instant"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"\s*(\d{1,9}(?:\.\d{1,6})?)\s*([smhdw])\s*")
_SPACED_OFFSET = re.compile(r" (\d{2}:?\d{2})$")
_LONGEST = timedelta(days=3650)
# What every store keeps (milliseconds since the epoch, as a 64-bit number in Elasticsearch's dates).
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9998, 12, 31, tzinfo=UTC)


def parse_instant(text: str, now: datetime, *, unix: bool = False) -> datetime:
    """The instant ``text`` names (UTC when it names no zone); ``unix``: a bare number is seconds since the epoch.

    Anything else, or a time before 1970 or after 9998, or more than ten years back, raises ``ValueError``.
    """
    value = text.strip()
    forms = "30m, 6h, 7d, 2026-01-01T12:00:00Z" + (" or seconds since the epoch" if unix else "")
    refused = ValueError(f"not a duration or an instant: {text[:100]!r} (e.g. {forms})")
    match = _DURATION.fullmatch(value)
    if match is not None:
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
        if seconds > _LONGEST.total_seconds():
            raise ValueError(f"not a duration or an instant a store keeps: {text[:100]!r} reaches back over ten years")
        at = now - timedelta(seconds=seconds)
    elif unix and _number(value):
        seconds = float(value)
        if not math.isfinite(seconds) or not 0 <= seconds < 253_000_000_000:
            raise refused
        at = datetime.fromtimestamp(seconds, UTC)
    else:
        try:
            at = _iso(value)
        except ValueError:
            raise refused from None
        at = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    if not _EARLIEST <= at <= _LATEST:
        raise ValueError(f"not a duration or an instant a store keeps: {text[:100]!r} is outside 1970 to 9998")
    return at


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _iso(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        # An offset's "+" left unencoded in a query string arrives as a space.
        fixed = _SPACED_OFFSET.sub(r"+\1", text)
        if fixed == text:
            raise
        return datetime.fromisoformat(fixed)
