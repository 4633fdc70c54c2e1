"""The partition processor every windowed agent is: its state is one set of tumbling windows."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import faust
import numpy as np
import numpy.typing as npt
from aiops_common.partition_replay import pack, unpack
from aiops_common.schemas import FeatureBatch, SchemaError
from aiops_common.topics import Topics

from aiops_stream.checkpoint import Outbound
from aiops_stream.series_clocks import SeriesClocks
from aiops_stream.settings import StreamSettings
from aiops_stream.tumbling import TumblingWindows, WindowConfig

__all__ = ["FeatureWindows", "WindowedProcessor", "feature_messages", "series_clocks", "window_config"]


def window_config(settings: StreamSettings, lengths_ms: tuple[int, ...] | None = None) -> WindowConfig:
    """Windows over metric samples (quiet series get ``absent`` rows), rows sharded like ``features``."""
    return WindowConfig(
        lengths_ms or settings.window_lengths_ms,
        allowed_lateness_ms=int(settings.stream_allowed_lateness_s * 1000),
        absent_after_ms=settings.stream_absent_after_windows * settings.stream_window_s * 1000,
        lookback_ms=int(settings.stream_forget_after_s * 1000),
        shards=Topics.FEATURES.partitions,
    )


def series_clocks(settings: StreamSettings, config: WindowConfig, source: str, partition: int) -> SeriesClocks:
    """The windows of one input partition, series sent with history windowed on their own clocks."""
    return SeriesClocks(
        config,
        source,
        partition,
        max_clocks=settings.stream_series_clocks,
        quiet_after_ms=int(settings.idle_flush_after_s * 1000),
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
    # One stable sort of the rows and one of the series by partition, instead of a search and a sort per partition:
    # a piece's rows and series stay in the batch's order, its series numbered in that order.
    n_series = len(batch.series)
    used = np.zeros(n_series, dtype=bool)
    used[batch.sid] = True
    shard = np.where(used, series_shard, partitions)  # series no row refers to go last, in no piece
    series_order = np.argsort(shard, kind="stable")
    series_bounds = np.searchsorted(shard[series_order], np.arange(partitions + 1))
    local = np.empty(n_series, dtype=np.uint32)
    local[series_order] = np.arange(n_series) - series_bounds[np.minimum(shard[series_order], partitions)]
    row_shard = shard[batch.sid]
    row_order = np.argsort(row_shard, kind="stable")
    row_bounds = np.searchsorted(row_shard[row_order], np.arange(partitions + 1))
    out = []
    for part in range(partitions):
        if row_bounds[part] == row_bounds[part + 1]:
            continue
        rows = row_order[row_bounds[part] : row_bounds[part + 1]]
        series = series_order[series_bounds[part] : series_bounds[part + 1]]
        piece = FeatureBatch(
            list(map(batch.series.__getitem__, series.tolist())),
            local[batch.sid[rows]],
            batch.start_ms[rows],
            batch.length_ms[rows],
            batch.values[:, rows],
            batch.columns,
            id=f"{batch.id}#{part}",
            source=batch.source,
            watermark_ms=batch.watermark_ms,
        )
        out.append(Outbound(topic, piece.encode(), key=str(part).encode(), partition=part))
    return out


class WindowedProcessor(ABC):
    """A :class:`~aiops_stream.checkpoint.PartitionProcessor` whose state is one set of windows.

    A subclass turns a message into samples (:meth:`take`) and closed rows into
    messages (:meth:`emit`); offsets, the replay point, the idle flush and the
    checkpoint come from the windows.
    """

    def __init__(self, windows: TumblingWindows | SeriesClocks, read: Callable[[str], bytes | None]) -> None:
        self.windows = windows
        self.undecodable = 0
        found = read("")
        self.restored: dict[str, Any] = unpack(found) if found is not None else {}
        if self.restored:
            self.windows.restore(self.restored)

    @abstractmethod
    def take(self, value: bytes, offset: int, replaying: bool) -> None:
        """Add one message's samples to the windows; raises SchemaError, before adding any, if undecodable."""

    @abstractmethod
    def emit(self, closed: FeatureBatch) -> list[Outbound]:
        """The messages that publish the rows of closed windows."""

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
            self.take(value, offset, replaying)
        except SchemaError:
            self.undecodable += 1
            self.windows.applied_offset = max(self.windows.applied_offset, offset)
            return None
        return self._emit(self.windows.advance())

    def idle(self, idle_ms: int) -> list[Outbound] | None:
        return self._emit(self.windows.idle(idle_ms))

    def _emit(self, closed: FeatureBatch | None) -> list[Outbound] | None:
        return None if closed is None else self.emit(closed)

    def checkpoint(self, extra: dict[str, Any] | None = None) -> dict[str, bytes]:
        return {"": pack({**self.windows.checkpoint(), **(extra or {})})}


class FeatureWindows(WindowedProcessor):
    """Rows of closed windows go to ``features``, to the partition of each series' shard."""

    def __init__(
        self, windows: TumblingWindows | SeriesClocks, features: faust.TopicT, read: Callable[[str], bytes | None]
    ) -> None:
        super().__init__(windows, read)
        self.features = features

    def emit(self, closed: FeatureBatch) -> list[Outbound]:
        return feature_messages(closed, self.features, self.windows.config.shards, self.windows.batch_shards)
