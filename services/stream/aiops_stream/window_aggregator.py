"""Agent: per-series tumbling windows over ``metrics.raw`` batches, published as feature batches."""

from __future__ import annotations

from collections.abc import Callable

import faust
import numpy as np
import numpy.typing as npt
from aiops_common.schemas import FeatureBatch, MetricBatch, SchemaError
from aiops_common.topics import Topics, declare

from aiops_stream.checkpoint import CheckpointedStage, Outbound, pack, unpack
from aiops_stream.settings import StreamSettings
from aiops_stream.tumbling import TumblingWindows, WindowConfig

__all__ = ["WindowProcessor", "feature_messages", "install", "metric_window_config"]


def metric_window_config(settings: StreamSettings) -> WindowConfig:
    return WindowConfig(
        settings.window_lengths_ms,
        allowed_lateness_ms=int(settings.stream_allowed_lateness_s * 1000),
        absent_after_ms=settings.stream_absent_after_windows * settings.stream_window_s * 1000,
        lookback_ms=int(settings.stream_forget_after_s * 1000),
        shards=Topics.FEATURES.partitions,
    )


def feature_messages(
    batch: FeatureBatch, topic: faust.TopicT, partitions: int, series_shard: npt.NDArray[np.int64] | None = None
) -> list[Outbound]:
    """One message per ``features`` partition, each holding the rows of the series hashed to it.

    ``series_shard``: the partition of each of ``batch.series``, when the producer has it at hand.
    """
    if len(batch) == 0:
        return []
    if series_shard is None:
        series_shard = np.array([m.shard(partitions) for m in batch.series], dtype=np.int64)
    row_shard = series_shard[batch.sid]
    out = []
    for part in np.unique(row_shard).tolist():
        rows = np.flatnonzero(row_shard == part)
        used, local = np.unique(batch.sid[rows], return_inverse=True)
        piece = FeatureBatch(
            [batch.series[i] for i in used.tolist()],
            local.astype(np.uint32),
            batch.start_ms[rows],
            batch.length_ms[rows],
            batch.values[:, rows],
            batch.columns,
            id=f"{batch.id}#{part}",
            source=batch.source,
            watermark_ms=batch.watermark_ms,
        )
        out.append(Outbound(topic, piece.encode(), key=str(part).encode(), partition=int(part)))
    return out


class WindowProcessor:
    """The metric windows of one ``metrics.raw`` partition."""

    def __init__(
        self,
        partition: int,
        config: WindowConfig,
        features: faust.TopicT,
        feature_partitions: int,
        read: Callable[[str], bytes | None],
    ) -> None:
        self.windows = TumblingWindows(config, source="metrics", partition=partition)
        self.features = features
        self.feature_partitions = feature_partitions
        self.undecodable = 0
        found = read("")
        if found is not None:
            self.windows.restore(unpack(found))

    @property
    def applied_offset(self) -> int:
        return self.windows.applied_offset

    @property
    def replay_from(self) -> int:
        return self.windows.replay_from

    def begin(self, offset: int) -> None:
        self.windows.applied_offset = offset - 1

    def process(self, value: bytes, offset: int, replaying: bool) -> list[Outbound] | None:
        try:
            batch = MetricBatch.decode(value)
        except SchemaError:
            self.undecodable += 1
            self.windows.applied_offset = max(self.windows.applied_offset, offset)
            return None
        ids = self.windows.series_ids(batch.series)
        self.windows.add(offset, ids[batch.sid], batch.ts_ms, batch.value)
        return self._publish(self.windows.advance())

    def idle(self, idle_ms: int) -> list[Outbound] | None:
        return self._publish(self.windows.idle(idle_ms))

    def _publish(self, closed: FeatureBatch | None) -> list[Outbound] | None:
        if closed is None:
            return None
        return feature_messages(closed, self.features, self.feature_partitions, self.windows.batch_shards)

    def checkpoint(self) -> dict[str, bytes]:
        return {"": pack(self.windows.checkpoint())}


def install(app: faust.App, settings: StreamSettings) -> CheckpointedStage:
    source = declare(app, Topics.METRICS_RAW, settings.topic_prefix)
    features = declare(app, Topics.FEATURES, settings.topic_prefix)
    config = metric_window_config(settings)
    return CheckpointedStage(
        app,
        "window_aggregator",
        source,
        Topics.METRICS_RAW.partitions,
        lambda partition, read: WindowProcessor(partition, config, features, Topics.FEATURES.partitions, read),
        idle_after_s=settings.idle_flush_after_s,
    )
