"""Samples the stream layer takes into no window: counted by stage and reason, and logged at a bounded rate."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

import structlog
from prometheus_client import Counter

__all__ = ["DROPPED_SAMPLES", "DropLog", "DropReason", "count_dropped"]

log = structlog.get_logger(__name__)

DROPPED_SAMPLES = Counter(
    "aiops_stream_dropped_samples_total",
    "Samples the stream layer took into no window, by stage (metrics, red, logs, edges) and reason",
    ["stage", "reason"],
)


class DropReason(StrEnum):
    LATE = "late"
    """Behind every window its series had already closed (the series' own clock had moved past it)."""
    CLOCK_LIMIT = "series_clock_limit"
    """Older than the partition's open windows, for a new series, while the partition's series on their own
    clocks were at ``stream_series_clocks``."""


@dataclass
class DropLog:
    """One log line per (stage, reason) every ``interval_s`` at most, carrying the samples dropped since the last.

    Drops come in bursts of thousands (a backfill behind a closed window); the counter
    has each of them, the log says that they happen and how many.
    """

    interval_s: float = 10.0
    clock: Callable[[], float] = time.monotonic
    _last: dict[tuple[str, str], float] = field(default_factory=dict)
    _held: dict[tuple[str, str], int] = field(default_factory=dict)

    def note(self, stage: str, reason: str, n: int, partition: int) -> bool:
        """Record ``n`` dropped samples; True when a line was written."""
        key = (stage, reason)
        held = self._held.get(key, 0) + n
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval_s:
            self._held[key] = held
            return False
        self._last[key] = now
        self._held[key] = 0
        log.warning(
            "samples dropped",
            stage=stage,
            reason=reason,
            samples=held,
            since_s=None if last is None else round(now - last, 1),
            partition=partition,
        )
        return True


_log = DropLog()


def count_dropped(stage: str, reason: DropReason, n: int, partition: int = 0) -> None:
    """Count ``n`` samples of ``stage`` dropped for ``reason`` in the process' registry, and log it (rate-limited)."""
    if n <= 0:
        return
    DROPPED_SAMPLES.labels(stage, reason.value).inc(n)
    _log.note(stage, reason.value, n, partition)
