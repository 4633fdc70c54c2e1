"""Agents: write raw samples (``metrics.raw``) and aggregated series (``features``) to the TSDB."""

from __future__ import annotations

import math
from collections.abc import Callable

import faust
from aiops_common.agent_loop import install_agent
from aiops_common.schemas import FeatureBatch, MetricBatch, MetricBatchBuilder, MetricKind
from aiops_common.schemas.features import window_series_name
from aiops_common.topics import Topics, declare
from aiops_common.tsdb import TimeSeriesStore, open_tsdb

from aiops_stream.settings import StreamSettings

__all__ = ["aggregate_series", "install"]


def aggregate_series(batch: FeatureBatch, stats: tuple[str, ...]) -> MetricBatch:
    """The chosen statistics of every feature row as samples at the window's end; NaN ones are left out.

    Aggregates become series named ``<name>:<stat>_<window>s`` (the recording-rule
    convention), stamped at the window's end, for each statistic in
    ``stream_tsdb_stats``. Writes are upserts per (series, timestamp), so a batch
    delivered again after a restart changes nothing.
    """
    builder = MetricBatchBuilder()
    ends = batch.end_ms.tolist()
    lengths = batch.length_ms.tolist()
    sids = batch.sid.tolist()
    for stat in stats:
        column = batch.column(stat).tolist()
        for i, value in enumerate(column):
            if math.isnan(value):
                continue
            meta = batch.series[sids[i]]
            builder.add(window_series_name(meta.name, stat, lengths[i]), meta.labels, ends[i], value, MetricKind.GAUGE)
    return builder.build()


def install(app: faust.App, settings: StreamSettings) -> None:
    metrics = declare(app, Topics.METRICS_RAW, settings.topic_prefix)
    features = declare(app, Topics.FEATURES, settings.topic_prefix)
    holder: list[TimeSeriesStore] = []

    def tsdb() -> TimeSeriesStore:
        if not holder:
            holder.append(open_tsdb(settings.tsdb_url))
        return holder[0]

    if settings.stream_tsdb_write_raw:
        _writer(app, metrics, "tsdb_raw_writer", MetricBatch.decode, tsdb)
    _writer(
        app,
        features,
        "tsdb_feature_writer",
        lambda value: aggregate_series(FeatureBatch.decode(value), settings.stream_tsdb_stats),
        tsdb,
    )


def _writer(
    app: faust.App,
    topic: faust.TopicT,
    name: str,
    samples_of: Callable[[bytes], MetricBatch],
    tsdb: Callable[[], TimeSeriesStore],
) -> None:
    """An agent writing ``samples_of(value)`` of every message of ``topic`` to the TSDB."""

    async def write_samples(samples: MetricBatch) -> int:
        if len(samples):
            await tsdb().write(samples)
        return 0  # publishes nothing

    install_agent(app, topic, name, samples_of, write_samples)
