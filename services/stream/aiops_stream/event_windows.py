"""Windows over samples derived from events (spans, log lines): one processor shape for RED and log features."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import faust
import numpy as np
import numpy.typing as npt
from aiops_common.schemas import MetricKind, SeriesMeta

from aiops_stream.series_clocks import SeriesClocks
from aiops_stream.settings import StreamSettings
from aiops_stream.tumbling import WindowConfig
from aiops_stream.window_processor import FeatureWindows, window_config

__all__ = ["DerivedSamples", "EventWindowProcessor", "event_window_config"]


def event_window_config(settings: StreamSettings, lengths_ms: tuple[int, ...] | None = None) -> WindowConfig:
    """Counts of events: a quiet window is zero events, and equal timestamps are separate events."""
    return dataclasses.replace(window_config(settings, lengths_ms), emit_empty=True, dedup_samples=False)


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


class EventWindowProcessor(FeatureWindows):
    """Windows of one input partition over samples derived from its events, published as feature batches."""

    def __init__(
        self,
        windows: SeriesClocks,
        features: faust.TopicT,
        derive: Deriver,
        read: Callable[[str], bytes | None],
    ) -> None:
        super().__init__(windows, features, read)
        self.derive = derive

    def take(self, value: bytes, offset: int, replaying: bool) -> None:
        derived = self.derive(value, offset, replaying)
        sid, ts, val = derived.arrays()
        ids = self.windows.series_ids(derived.metas)
        self.windows.add(offset, ids[sid], ts, val)
