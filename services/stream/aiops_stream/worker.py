"""The stream service's agents, installed on a Faust app by ``aiops up`` / ``aiops worker stream``."""

from __future__ import annotations

import faust

from aiops_stream import log_patterns, red_metrics, trace_edges, tsdb_writer, window_aggregator
from aiops_stream.settings import StreamSettings

__all__ = ["install"]


def install(app: faust.App, settings: StreamSettings) -> None:
    window_aggregator.install(app, settings)
    red_metrics.install(app, settings)
    trace_edges.install(app, settings)
    log_patterns.install(app, settings)
    if settings.stream_tsdb_enabled:
        tsdb_writer.install(app, settings)
