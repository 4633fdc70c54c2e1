"""Samples the stream layer takes into no window: counted by stage and reason, and logged at a bounded rate."""

from __future__ import annotations

from enum import StrEnum

import structlog
from aiops_common.observability import LogRateLimit
from prometheus_client import Counter

__all__ = ["DROPPED_SAMPLES", "DropReason", "count_dropped"]

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


_limit = LogRateLimit(10.0)


def count_dropped(stage: str, reason: DropReason, n: int, partition: int = 0) -> None:
    """Count ``n`` samples of ``stage`` dropped for ``reason`` in the process' registry, and log it (rate-limited).

    Drops come in bursts of thousands (a backfill behind a closed window); the counter
    has each of them, the log, one line per stage and reason every 10 s at most, says
    that they happen and how many.
    """
    if n <= 0:
        return
    DROPPED_SAMPLES.labels(stage, reason.value).inc(n)
    noted = _limit.note(f"{stage}:{reason.value}", n)
    if noted is not None:
        samples, since_s = noted
        log.warning(
            "samples dropped",
            stage=stage,
            reason=reason.value,
            samples=samples,
            since_s=None if since_s is None else round(since_s, 1),
            partition=partition,
        )
