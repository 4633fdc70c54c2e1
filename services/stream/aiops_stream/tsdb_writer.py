"""Agents: write raw samples (``metrics.raw``) and aggregated series (``features``) to the TSDB."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable, Sequence

import faust
import numpy as np
from aiops_common.agent_loop import WriteRetry, install_store_agent
from aiops_common.schemas import FeatureBatch, MetricBatch, MetricBatchBuilder, MetricKind, SeriesMeta
from aiops_common.schemas.features import window_series_name
from aiops_common.topics import Topics, declare
from aiops_common.tsdb import TimeSeriesStore, open_tsdb

from aiops_stream.settings import StreamSettings

__all__ = ["BATCH_MESSAGES", "BATCH_WITHIN_S", "RETRY_UNTIL_STORED", "aggregate_series", "install", "merge_batches"]

BATCH_MESSAGES = 16
"""Most messages written to the TSDB in one write (and acknowledged together after it)."""
BATCH_WITHIN_S = 0.2
"""A write takes what arrived in this long when fewer than BATCH_MESSAGES did: the most a message waits."""
UNAVAILABLE = (OSError, TimeoutError, sqlite3.OperationalError)
"""A store that is down, locked or out of space: the write is tried again, nothing is skipped."""
RETRY_UNTIL_STORED = WriteRetry(
    delays=(0.5, 1.0, 2.0, 4.0, 8.0, 10.0),
    until_stored=True,
    unavailable=UNAVAILABLE,
    unstorable=(),
    message="tsdb write failed, trying again",
    level="error",
)
"""Waits doubling from 0.5 s to 10 s, then every 10 s for as long as the store is unavailable: skipping a
batch would leave a gap the group cannot commit past. Any other error goes on to Faust, acknowledging nothing."""


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


def merge_batches(batches: Sequence[MetricBatch]) -> MetricBatch:
    """The samples of ``batches`` as one batch, in order (so the last of duplicates still wins).

    A series object that several batches share (a decoded series is reused batch after
    batch) is listed once.
    """
    if len(batches) == 1:
        return batches[0]
    series: list[SeriesMeta] = []
    at: dict[int, int] = {}
    sids = []
    for batch in batches:
        local = np.empty(len(batch.series), dtype=np.uint32)
        for i, meta in enumerate(batch.series):
            index = at.get(id(meta))  # the batches hold every meta alive: an id names one meta here
            if index is None:
                index = at[id(meta)] = len(series)
                series.append(meta)
            local[i] = index
        sids.append(local[batch.sid])
    return MetricBatch(
        series,
        np.concatenate(sids) if sids else np.zeros(0, dtype=np.uint32),
        np.concatenate([b.ts_ms for b in batches]) if batches else np.zeros(0, dtype=np.int64),
        np.concatenate([b.value for b in batches]) if batches else np.zeros(0, dtype=np.float64),
    )


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
    """An agent writing ``samples_of(value)`` of up to :data:`BATCH_MESSAGES` messages of ``topic`` per TSDB write.

    One write per message made the raw writer the consumer that fell behind inside ``aiops up``
    (docs/soak.md): there, each statement SQLite runs costs a wait for the interpreter lock,
    and a merged write runs one statement for 16 messages of 250 samples. The messages are
    acknowledged once their write is done: killed before, the worker reads them again, and
    writing them twice stores the same samples.
    """

    async def write_samples(batches: list[MetricBatch]) -> None:
        samples = merge_batches(batches)
        if len(samples):
            await tsdb().write(samples)

    install_store_agent(app, topic, name, samples_of, write_samples, BATCH_MESSAGES, BATCH_WITHIN_S, RETRY_UNTIL_STORED)
