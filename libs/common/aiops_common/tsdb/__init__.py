"""The time-series store: one protocol, one implementation per URL scheme, one registry."""

from __future__ import annotations

from aiops_common.registry import BackendRegistry
from aiops_common.tsdb._protocol import LOOKBACK_MS, Series, TimeSeriesStore

__all__ = ["LOOKBACK_MS", "TSDB_BACKENDS", "Series", "TimeSeriesStore", "open_tsdb"]

TSDB_BACKENDS: BackendRegistry[TimeSeriesStore] = BackendRegistry("tsdb")
TSDB_BACKENDS.register("sqlite", "aiops_common.tsdb.sqlite:SqliteStore")
TSDB_BACKENDS.register("prometheus", "aiops_common.tsdb.prometheus:PrometheusStore")
TSDB_BACKENDS.register("victoriametrics", "aiops_common.tsdb.prometheus:PrometheusStore")


def open_tsdb(url: str) -> TimeSeriesStore:
    """The store a URL names, e.g. ``sqlite:///.aiops/tsdb.sqlite`` or ``victoriametrics://vm:8428``.

    >>> TSDB_BACKENDS.schemes
    ['prometheus', 'sqlite', 'victoriametrics']
    """
    return TSDB_BACKENDS.by_url(url)
