"""Settings of the stream service (``AIOPS_STREAM_*``)."""

from __future__ import annotations

from typing import Annotated, Self

from aiops_common.settings import CommonSettings
from pydantic import Field, model_validator

__all__ = ["StreamSettings"]


class StreamSettings(CommonSettings):
    stream_window_s: Annotated[int, Field(gt=0)] = 10
    """Length of the base tumbling window; every feature series gets one row per window."""
    stream_rollups: tuple[int, ...] = (60, 300)
    """Longer tumbling windows (seconds, multiples of the base window) computed from the same samples."""
    stream_allowed_lateness_s: Annotated[float, Field(ge=0)] = 5.0
    """A window closes once the partition's event-time watermark (latest timestamp seen minus this) passes
    its end; samples for a window already closed are dropped and counted."""
    stream_absent_after_windows: Annotated[int, Field(gt=0)] = 3
    """A known series with no sample for this many base windows gets an explicit ``absent`` row."""
    stream_forget_after_s: Annotated[float, Field(gt=0)] = 600.0
    """A series silent this long is forgotten (no more ``absent`` rows); also how far back a restarted worker
    re-reads its input to rebuild counter baselines and the span index."""
    stream_series_clocks: Annotated[int, Field(ge=0)] = 10_000
    """Most series of one input partition that may window by their own event-time clock at once: a new series
    whose samples are older than the partition's open windows (history sent to a running platform) gets one.
    Samples of further such series are dropped and counted (``series_clock_limit``); 0 turns own clocks off."""
    stream_span_index_ttl_s: Annotated[float, Field(gt=0)] = 60.0
    """Parent and child spans further apart in time than this are not joined into a call edge."""
    stream_log_max_templates: Annotated[int, Field(gt=0)] = 2000
    """Most log templates the drain3 miner of one partition keeps."""
    stream_log_similarity: Annotated[float, Field(gt=0, le=1)] = 0.4
    """drain3 similarity threshold: how alike a line must be to join an existing template."""
    stream_tsdb_write_raw: bool = True
    """Write every raw sample of ``metrics.raw`` to the TSDB, not only the aggregates."""
    stream_tsdb_stats: tuple[str, ...] = ("value", "p95")
    """Feature columns written to the TSDB as series named ``<name>:<stat>_<window>s``."""
    stream_tsdb_enabled: bool = True
    """Run the TSDB writer agents in this worker."""
    stream_idle_flush_s: Annotated[float, Field(gt=0)] | None = None
    """Wall-clock quiet time after which a partition's open windows are closed without input (an idle flush);
    unset: one base window plus the allowed lateness."""

    @model_validator(mode="after")
    def _check_windows(self) -> Self:
        for rollup in self.stream_rollups:
            if rollup <= self.stream_window_s or rollup % self.stream_window_s:
                raise ValueError(f"rollup {rollup}s must be a multiple of the {self.stream_window_s}s base window")
        if self.stream_forget_after_s <= self.stream_absent_after_windows * self.stream_window_s:
            raise ValueError("stream_forget_after_s must be longer than stream_absent_after_windows base windows")
        return self

    @property
    def window_lengths_ms(self) -> tuple[int, ...]:
        """The base window and every roll-up, in milliseconds, shortest first."""
        return tuple(sorted({self.stream_window_s * 1000, *(r * 1000 for r in self.stream_rollups)}))

    @property
    def idle_flush_after_s(self) -> float:
        """Wall-clock quiet time after which a partition's event time moves on without input.

        ``stream_idle_flush_s``, or one base window plus the allowed lateness: by then a
        live source would have closed the window holding its latest sample.
        """
        if self.stream_idle_flush_s is not None:
            return self.stream_idle_flush_s
        return self.stream_window_s + self.stream_allowed_lateness_s
