"""Which sample times are accepted, and how the JSON APIs spell a time."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["EARLIEST_MS", "TimeWindow", "datetime_from_ns", "parse_timestamp_ns"]

_NS_PER_MS = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Unix numbers below this are seconds (1e11 s is the year 5138); below _MS_BELOW, milliseconds.
_SECONDS_BELOW = 1e11
_MS_BELOW = 1e14
EARLIEST_MS = 31_536_000_000
"""1971-01-01: no time before it is accepted, whatever the age limit.

Every time sent in the wrong unit that lands in the past (seconds or milliseconds
where nanoseconds are expected, seconds where milliseconds are) lands in January
1970, so this floor refuses them even with the age check disabled.
"""
# A time in the wrong unit, scaled by the right factor, lands after this (2000-01-01) and near now.
_PLAUSIBLE_FROM_MS = 946_684_800_000
_DAY_MS = 86_400_000

# A time field's unit, and the other units a sender may have put in it, with the factor that fixes each.
_SMALLER_UNITS_NS = (("seconds", 10**9), ("milliseconds", 10**6), ("microseconds", 10**3))
_SMALLER_UNITS_MS = (("seconds", 1000),)
_LARGER_UNITS_MS = (("microseconds", 1000), ("nanoseconds", 10**6))

# The settings behind the window, named in refusals so that a sender knows what to change.
_AGE_SETTING = "AIOPS_INGEST_MAX_SAMPLE_AGE_S"
_SKEW_SETTING = "AIOPS_INGEST_MAX_FUTURE_SKEW_S"


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Accepted sample times ``min_ms <= t <= max_ms`` around the server clock ``now_ms``.

    Times before 1971 (:data:`EARLIEST_MS`: time 0, an unset protobuf field, and
    every time sent in too small a unit) and negative times are never accepted,
    even with the age check disabled.
    """

    now_ms: int
    min_ms: int
    max_ms: int
    max_sample_age_s: float = 0.0
    """The age limit the window was made with (0: none), named in refusals."""
    max_future_skew_s: float = 0.0

    @classmethod
    def around(cls, now_ms: int, max_future_skew_s: float, max_sample_age_s: float) -> TimeWindow:
        oldest = now_ms - int(max_sample_age_s * 1000) if max_sample_age_s > 0 else EARLIEST_MS
        return cls(
            now_ms,
            max(oldest, EARLIEST_MS),
            now_ms + int(max_future_skew_s * 1000),
            max_sample_age_s,
            max_future_skew_s,
        )

    @property
    def min_ns(self) -> int:
        return self.min_ms * _NS_PER_MS

    @property
    def max_ns(self) -> int:
        return self.max_ms * _NS_PER_MS + _NS_PER_MS - 1

    def problem_ms(self, ts_ms: int) -> str | None:
        """Why ``ts_ms`` (Unix milliseconds) is refused, or None when it is accepted."""
        if self.min_ms <= ts_ms <= self.max_ms:
            return None
        if ts_ms <= 0:
            return f"timestamp {ts_ms} is not a valid time (it must be a positive Unix time in milliseconds)"
        if ts_ms < EARLIEST_MS:
            return self._unit_problem(ts_ms, "milliseconds", _SMALLER_UNITS_MS, 1)
        if ts_ms > self.max_ms and (mistake := self._larger_unit(ts_ms)):
            return mistake
        return self._window_problem(ts_ms)

    def problem_ns(self, ts_ns: int) -> str | None:
        """Why ``ts_ns`` (Unix nanoseconds) is refused, or None when it is accepted."""
        if ts_ns <= 0:
            return f"timestamp {ts_ns} is not a valid time (it must be a positive Unix time in nanoseconds)"
        ts_ms = ts_ns // _NS_PER_MS
        if ts_ms < EARLIEST_MS:
            return self._unit_problem(ts_ns, "nanoseconds", _SMALLER_UNITS_NS, _NS_PER_MS)
        if self.min_ms <= ts_ms <= self.max_ms:
            return None
        return self._window_problem(ts_ms)

    def _plausible(self, ts_ms: float) -> bool:
        """Whether a time is one a sender means: since 2000 and not beyond tomorrow (plus the allowed skew)."""
        return _PLAUSIBLE_FROM_MS <= ts_ms <= self.max_ms + _DAY_MS

    def _unit_problem(self, value: int, unit: str, smaller: tuple[tuple[str, int], ...], per_ms: int) -> str:
        """A time before 1971: name the unit it was most likely sent in, when one makes it plausible."""
        for name, factor in smaller:
            if self._plausible(value * factor / per_ms):
                return (
                    f"timestamp {value} looks like {name} where Unix {unit} are expected "
                    f"(as {unit} it is {_iso(value // per_ms)}, as {name} {_iso(value * factor // per_ms)})"
                )
        return f"timestamp {value} ({_iso(value // per_ms)}) is before 1971, not a plausible time in Unix {unit}"

    def _larger_unit(self, ts_ms: int) -> str | None:
        for name, factor in _LARGER_UNITS_MS:
            if self._plausible(ts_ms / factor):
                return (
                    f"timestamp {ts_ms} looks like {name} where Unix milliseconds are expected "
                    f"(as milliseconds it is {_iso(ts_ms)}, as {name} {_iso(ts_ms // factor)})"
                )
        return None

    def _window_problem(self, ts_ms: int) -> str:
        if ts_ms < self.min_ms:
            return (
                f"timestamp {_iso(ts_ms)} is {(self.now_ms - ts_ms) / 1000:.0f}s old, older than the accepted "
                f"{(self.now_ms - self.min_ms) / 1000:.0f}s ({_AGE_SETTING}={self.max_sample_age_s:.15g}; "
                "0 turns the age check off)"
            )
        return (
            f"timestamp {_iso(ts_ms)} is {(ts_ms - self.now_ms) / 1000:.0f}s ahead of the server clock, more than "
            f"the accepted {(self.max_ms - self.now_ms) / 1000:.0f}s ({_SKEW_SETTING}={self.max_future_skew_s:.15g})"
        )


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
    larger ones are refused rather than guessed, as is any time before 1971 (see
    :data:`EARLIEST_MS`). An RFC 3339 time needs its offset (``Z`` or ``+02:00``).
    Raises ValueError with a readable message.
    """
    if isinstance(value, bool):
        raise ValueError("a timestamp must be an RFC 3339 string or a Unix time in seconds or milliseconds")
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            ts_ns = _rfc3339_ns(text)
        else:
            ts_ns = _unix_ns(number)
    elif isinstance(value, int | float):
        ts_ns = _unix_ns(value)
    else:
        raise ValueError("a timestamp must be an RFC 3339 string or a Unix time in seconds or milliseconds")
    if ts_ns < EARLIEST_MS * _NS_PER_MS:
        raise ValueError(f"timestamp {value!r} ({_iso(ts_ns // _NS_PER_MS)}) is before 1971, not a plausible time")
    return ts_ns


def _unix_ns(number: int | float) -> int:
    if isinstance(number, float) and not math.isfinite(number):
        raise ValueError(f"timestamp {number!r} is not a Unix time")
    if number <= 0:
        raise ValueError(f"timestamp {number!r} is not a positive Unix time")
    if number >= _MS_BELOW:
        unit = "nanoseconds" if number >= _MS_BELOW * 1000 else "microseconds"
        raise ValueError(f"timestamp {number!r} looks like {unit}: send Unix seconds or milliseconds")
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
