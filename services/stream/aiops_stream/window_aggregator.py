"""Agent: per-series tumbling windows over ``metrics.raw`` batches, published as feature batches."""

from __future__ import annotations

from collections.abc import Callable

import faust
from aiops_common.schemas import MetricBatch
from aiops_common.topics import Topics, declare

from aiops_stream.checkpoint import CheckpointedStage
from aiops_stream.series_clocks import SeriesClocks
from aiops_stream.settings import StreamSettings
from aiops_stream.window_processor import FeatureWindows, series_clocks, window_config

__all__ = ["WindowProcessor", "install"]


class WindowProcessor(FeatureWindows):
    """The metric windows of one ``metrics.raw`` partition."""

    def __init__(self, windows: SeriesClocks, features: faust.TopicT, read: Callable[[str], bytes | None]) -> None:
        super().__init__(windows, features, read)

    def take(self, value: bytes, offset: int, replaying: bool) -> None:
        batch = MetricBatch.decode(value)
        ids = self.windows.series_ids(batch.series)
        self.windows.add(offset, ids[batch.sid], batch.ts_ms, batch.value)


def install(app: faust.App, settings: StreamSettings) -> CheckpointedStage:
    source = declare(app, Topics.METRICS_RAW, settings.topic_prefix)
    features = declare(app, Topics.FEATURES, settings.topic_prefix)
    config = window_config(settings)
    return CheckpointedStage(
        app,
        "window_aggregator",
        source,
        Topics.METRICS_RAW.partitions,
        lambda partition, read: WindowProcessor(series_clocks(settings, config, "metrics", partition), features, read),
        idle_after_s=settings.idle_flush_after_s,
    )
