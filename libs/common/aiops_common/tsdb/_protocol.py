"""The time-series store protocol every TSDB backend implements, and the series it returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from aiops_common.schemas.metrics import MetricBatch, series_key

__all__ = ["LOOKBACK_MS", "Series", "TimeSeriesStore"]

LOOKBACK_MS = 300_000
"""How far back a stepped query looks for a sample at each step (Prometheus' default lookback delta)."""


@dataclass(slots=True)
class Series:
    """One series' samples, timestamps ascending."""

    name: str
    labels: dict[str, str]
    ts_ms: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    values: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0, dtype=np.float64))

    @property
    def key(self) -> str:
        return series_key(self.name, self.labels)

    def points(self) -> list[tuple[int, float]]:
        return list(zip(self.ts_ms.tolist(), self.values.tolist(), strict=True))


@runtime_checkable
class TimeSeriesStore(Protocol):
    """Raw and aggregated series: written in batches, read back by label matchers.

    Matchers are equality on label values, the metric name being the label ``__name__``.
    Writing the same sample twice keeps one. A Prometheus stale marker ends a series:
    it is never returned as a value.
    """

    url: str

    async def write(self, batch: MetricBatch) -> None:
        """Store every sample of the batch (idempotent per series and timestamp)."""

    async def query_range(
        self, matchers: Mapping[str, str], start_ms: int, end_ms: int, step_ms: int | None = None
    ) -> list[Series]:
        """Series matching all ``matchers``, sorted by key.

        Without ``step_ms``: every stored sample with ``start_ms <= ts <= end_ms``. With it:
        one point per step from ``start_ms`` to ``end_ms``, the latest sample at or
        before the step within :data:`LOOKBACK_MS` (as Prometheus' ``query_range``).
        """

    async def label_values(self, label: str, matchers: Mapping[str, str] | None = None) -> list[str]:
        """Sorted distinct values of ``label`` among the series matching ``matchers``."""

    async def close(self) -> None: ...
