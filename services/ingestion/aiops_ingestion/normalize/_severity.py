"""Log severity: OTLP severity numbers and common level names into the six named bands."""

from __future__ import annotations

import re

from aiops_common.schemas.logs import SEVERITY_NAMES

__all__ = ["UNSPECIFIED", "severity_band", "severity_number_from_text"]

UNSPECIFIED = "UNSPECIFIED"

# First severity number of each band: TRACE=1, DEBUG=5, INFO=9, WARN=13, ERROR=17, FATAL=21.
_BAND_START = {name: 1 + 4 * i for i, name in enumerate(SEVERITY_NAMES)}
_ALIASES = {
    "information": "INFO",
    "notice": "INFO",
    "warning": "WARN",
    "err": "ERROR",
    "severe": "ERROR",
    "critical": "FATAL",
    "crit": "FATAL",
    "alert": "FATAL",
    "emergency": "FATAL",
    "emerg": "FATAL",
    "panic": "FATAL",
}
# OTLP's short names: INFO, INFO2..INFO4 and so on for every band.
_SHORT_NAME = re.compile(r"(trace|debug|info|warn|error|fatal)([234]?)")


def severity_band(number: int) -> str:
    """``17`` -> ``ERROR``; 0 is ``UNSPECIFIED``. Raises ValueError outside 0..24."""
    if number == 0:
        return UNSPECIFIED
    if not 1 <= number <= 24:
        raise ValueError(f"severity number {number} is outside 1..24")
    return SEVERITY_NAMES[(number - 1) // 4]


def severity_number_from_text(text: str) -> int | None:
    """The severity number of a level name (``warning`` -> 13, ``ERROR3`` -> 19), None if unknown."""
    key = text.strip().lower()
    alias = _ALIASES.get(key)
    if alias:
        return _BAND_START[alias]
    match = _SHORT_NAME.fullmatch(key)
    if match is None:
        return None
    return _BAND_START[match.group(1).upper()] + (int(match.group(2)) - 1 if match.group(2) else 0)
