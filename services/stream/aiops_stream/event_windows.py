"""Windows over samples derived from events (spans, log lines): one processor shape for RED and log features."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import faust
import numpy as np
import numpy.typing as npt
from aiops_common.schemas import FeatureBatch, MetricKind, SchemaError, SeriesMeta
from aiops_common.topics import Topics

from aiops_stream.checkpoint import Outbound, pack, unpack
from aiops_stream.settings import StreamSettings
from aiops_stream.tumbling import TumblingWindows, WindowConfig
from aiops_stream.window_aggregator import feature_messages

__all__ = ["DerivedSamples", "EventWindowProcessor", "event_window_config"]


def event_window_config(settings: StreamSettings, lengths_ms: tuple[int, ...] | None = None) -> WindowConfig:
    """Counts of events: a quiet window is zero events, and equal timestamps are separate events."""
    return WindowConfig(
        lengths_ms or settings.window_lengths_ms,
        allowed_lateness_ms=int(settings.stream_allowed_lateness_s * 1000),
        absent_after_ms=settings.stream_absent_after_windows * settings.stream_window_s * 1000,
        lookback_ms=int(settings.stream_forget_after_s * 1000),
        emit_empty=True,
        dedup_samples=False,
        shards=Topics.FEATURES.partitions,
    )


@dataclass
class DerivedSamples:
    """Samples a message's events turned into: ``metas[sid[i]]`` had ``value[i]`` at ``ts[i]``."""

    metas: list[SeriesMeta] = field(default_factory=list)
    sid: list[int] = field(default_factory=list)
    ts: list[int] = field(default_factory=list)
    value: list[float] = field(default_factory=list)
    _index: dict[tuple[str, tuple[tuple[str, str], ...]], int] = field(default_factory=dict)

    def series(self, name: str, labels: dict[str, str], kind: MetricKind, unit: str = "") -> int:
        ident = (name, tuple(sorted(labels.items())))
        idx = self._index.get(ident)
        if idx is None:
            idx = self._index[ident] = len(self.metas)
            self.metas.append(SeriesMeta(name, labels, kind, unit))
        return idx

    def add(self, series: int, ts_ms: int, value: float) -> None:
        self.sid.append(series)
        self.ts.append(ts_ms)
        self.value.append(value)

    def arrays(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        return (
            np.asarray(self.sid, dtype=np.int64),
            np.asarray(self.ts, dtype=np.int64),
            np.asarray(self.value, dtype=np.float64),
        )


Deriver = Callable[[bytes, int, bool], DerivedSamples]
"""``derive(value, offset, replaying)``: a message's events as samples; raises SchemaError if undecodable."""


class EventWindowProcessor:
    """Windows of one input partition over samples derived from its events, published as feature batches."""

    def __init__(
        self,
        source: str,
        partition: int,
        config: WindowConfig,
        features: faust.TopicT,
        feature_partitions: int,
        derive: Deriver,
        read: Callable[[str], bytes | None],
    ) -> None:
        self.windows = TumblingWindows(config, source=source, partition=partition)
        self.features = features
        self.feature_partitions = feature_partitions
        self.derive = derive
        self.undecodable = 0
        found = read("")
        self.restored: dict[str, Any] = unpack(found) if found is not None else {}
        if self.restored:
            self.windows.restore(self.restored)

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
            derived = self.derive(value, offset, replaying)
        except SchemaError:
            self.undecodable += 1
            self.windows.applied_offset = max(self.windows.applied_offset, offset)
            return None
        sid, ts, val = derived.arrays()
        ids = self.windows.series_ids(derived.metas)
        self.windows.add(offset, ids[sid], ts, val)
        return self._publish(self.windows.advance())

    def idle(self, idle_ms: int) -> list[Outbound] | None:
        return self._publish(self.windows.idle(idle_ms))

    def _publish(self, closed: FeatureBatch | None) -> list[Outbound] | None:
        if closed is None:
            return None
        return feature_messages(closed, self.features, self.feature_partitions, self.windows.batch_shards)

    def checkpoint(self, extra: dict[str, Any] | None = None) -> dict[str, bytes]:
        return {"": pack({**self.windows.checkpoint(), **(extra or {})})}
