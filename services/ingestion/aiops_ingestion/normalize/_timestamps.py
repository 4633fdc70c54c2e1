"""Which sample times are accepted, and how the JSON APIs spell a time."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["TimeWindow", "datetime_from_ns", "parse_timestamp_ns"]

_NS_PER_MS = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Unix numbers below this are seconds (1e11 s is the year 5138); below _MS_BELOW, milliseconds.
_SECONDS_BELOW = 1e11
_MS_BELOW = 1e14


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Accepted sample times ``min_ms <= t <= max_ms`` around the server clock ``now_ms``.

    Time 0 (an unset protobuf field) and negative times are never accepted, even
    with the age check disabled.
    """

    now_ms: int
    min_ms: int
    max_ms: int

    @classmethod
    def around(cls, now_ms: int, max_future_skew_s: float, max_sample_age_s: float) -> TimeWindow:
        oldest = now_ms - int(max_sample_age_s * 1000) if max_sample_age_s > 0 else 1
        return cls(now_ms, max(oldest, 1), now_ms + int(max_future_skew_s * 1000))

    @property
    def min_ns(self) -> int:
        return self.min_ms * _NS_PER_MS

    @property
    def max_ns(self) -> int:
        return self.max_ms * _NS_PER_MS + _NS_PER_MS - 1

    def problem_ms(self, ts_ms: int) -> str | None:
        """Why ``ts_ms`` is refused, or None when it is accepted."""
        if ts_ms <= 0:
            return f"timestamp {ts_ms} is not a valid time (it must be a positive Unix time)"
        if ts_ms < self.min_ms:
            age_s = (self.now_ms - ts_ms) / 1000
            return (
                f"timestamp {_iso(ts_ms)} is {age_s:.0f}s old, older than the accepted "
                f"{(self.now_ms - self.min_ms) / 1000:.0f}s"
            )
        if ts_ms > self.max_ms:
            ahead_s = (ts_ms - self.now_ms) / 1000
            return (
                f"timestamp {_iso(ts_ms)} is {ahead_s:.0f}s ahead of the server clock, more than the accepted "
                f"{(self.max_ms - self.now_ms) / 1000:.0f}s"
            )
        return None

    def problem_ns(self, ts_ns: int) -> str | None:
        if ts_ns <= 0:
            return f"timestamp {ts_ns} is not a valid time (it must be a positive Unix time in nanoseconds)"
        return self.problem_ms(ts_ns // _NS_PER_MS)


def _iso(ts_ms: int) -> str:
    try:
        return datetime.fromtimestamp(ts_ms / 1000, UTC).isoformat().replace("+00:00", "Z")
    except (OverflowError, ValueError, OSError):
        return f"{ts_ms}ms"


def datetime_from_ns(ts_ns: int) -> datetime:
    """A UTC datetime (microsecond precision) from Unix nanoseconds."""
    seconds, ns = divmod(ts_ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=ns // 1000)


def parse_timestamp_ns(value: object) -> int:
    """Unix nanoseconds from an RFC 3339 string or a Unix time in seconds or milliseconds.

    Numbers (or numeric strings) below 1e11 are seconds, below 1e14 milliseconds;
    larger ones are refused rather than guessed. An RFC 3339 time needs its offset
    (``Z`` or ``+02:00``). Raises ValueError with a readable message.
    """
    if isinstance(value, bool):
        raise ValueError("a timestamp must be an RFC 3339 string or a Unix time in seconds or milliseconds")
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            return _rfc3339_ns(text)
        return _unix_ns(number)
    if isinstance(value, int | float):
        return _unix_ns(value)
    raise ValueError("a timestamp must be an RFC 3339 string or a Unix time in seconds or milliseconds")


def _unix_ns(number: int | float) -> int:
    if isinstance(number, float) and not math.isfinite(number):
        raise ValueError(f"timestamp {number!r} is not a Unix time")
    if number <= 0:
        raise ValueError(f"timestamp {number!r} is not a positive Unix time")
    if number >= _MS_BELOW:
        raise ValueError(f"timestamp {number!r} is too large: send Unix seconds or milliseconds")
    if isinstance(number, int):
        return number * (1_000_000_000 if number < _SECONDS_BELOW else _NS_PER_MS)
    # A double holds about 16 digits: scale to microseconds (exact enough), not straight to nanoseconds.
    micros = round(number * (1_000_000 if number < _SECONDS_BELOW else 1000))
    return micros * 1000


def _rfc3339_ns(text: str) -> int:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"timestamp {text!r} is neither RFC 3339 nor a Unix time") from None
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no UTC offset (add Z or +HH:MM)")
    delta = moment - _EPOCH
    ns = (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    if ns <= 0:
        raise ValueError(f"timestamp {text!r} is not after 1970-01-01")
    return ns
