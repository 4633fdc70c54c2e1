"""The window aggregator as a real worker on the embedded broker: exact features from metrics.raw batches."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np
import pytest
from aiops_common.broker import Publisher
from aiops_common.schemas import MetricBatchBuilder, MetricKind
from aiops_common.topics import Topics
from aiops_common.tsdb import TimeSeriesStore, open_tsdb
from aiops_stream.tumbling import STALE_NAN_BITS

from ..conftest import StreamWorker, TopicReader, feature_rows, send

pytestmark = pytest.mark.functional

STALE = struct.unpack("<d", struct.pack("<Q", STALE_NAN_BITS))[0]
T0 = 1_699_999_980_000  # a multiple of 60 s
CPU = 'cpu{host="a"}'
REQ = 'req_total{host="a"}'
GONE = 'gone{host="a"}'


def batch(*samples: tuple[str, int, float, MetricKind]) -> bytes:
    builder = MetricBatchBuilder()
    for name, offset_ms, value, kind in samples:
        builder.add(name, {"host": "a"}, T0 + offset_ms, value, kind)
    return builder.build().encode()


G, C = MetricKind.GAUGE, MetricKind.COUNTER


async def test_windows_rollups_counters_and_absence(
    stream_worker: type[StreamWorker], publisher: Publisher, features: TopicReader, tmp_path: Path
) -> None:
    # The TSDB writers run too, into the default SQLite store under the data folder.
    worker = stream_worker(stream_window_s=10, stream_rollups="[60]", stream_allowed_lateness_s=1)
    messages = [
        batch(("cpu", 1_000, 1.0, G), ("req_total", 2_000, 10.0, C), ("gone", 3_000, 5.0, G), ("cpu", 4_000, 3.0, G)),
        # out of order within the batch and across batches
        batch(("req_total", 6_000, 16.0, C), ("cpu", 7_000, 8.0, G), ("gone", 8_000, STALE, G)),
        batch(("cpu", 15_000, 4.0, G), ("req_total", 11_000, 20.0, C), ("cpu", 12_000, 2.0, G)),
        batch(("req_total", 16_000, 3.0, C)),  # counter reset
        batch(("cpu", 21_500, 6.0, G)),  # watermark 20.5 s: closes [0, 10) and [10, 20)
        batch(("cpu", 9_000, 100.0, G)),  # too late: its window is closed
        batch(("cpu", 62_000, 7.0, G)),  # closes the first minute
    ]
    for value in messages:
        await send(publisher, Topics.METRICS_RAW, value)

    def complete(values: list) -> bool:
        rows = feature_rows(values)
        return (CPU, T0, 60_000) in rows and (CPU, T0 + 50_000, 10_000) in rows

    await features.until(complete, 60, worker)
    rows = feature_rows(features.values)

    w0 = rows[(CPU, T0, 10_000)]
    assert (w0["count"], w0["sum"], w0["mean"], w0["min"], w0["max"], w0["last"]) == (3, 12, 4, 1, 8, 8)
    assert (w0["p50"], w0["p95"], w0["p99"]) == (
        3.0,
        float(np.quantile([1, 3, 8], 0.95)),
        float(np.quantile([1, 3, 8], 0.99)),
    )
    assert w0["stddev"] == pytest.approx(math.sqrt(26 / 3), rel=1e-15)
    assert w0["value"] == 4.0 and math.isnan(w0["rate"]) and w0["absent"] == 0.0

    assert rows[(REQ, T0, 10_000)]["increase"] == 6.0
    req1 = rows[(REQ, T0 + 10_000, 10_000)]
    assert (req1["increase"], req1["rate"], req1["value"], req1["last"]) == (7.0, 0.7, 0.7, 3.0)

    assert rows[(GONE, T0, 10_000)]["count"] == 1.0
    assert rows[(GONE, T0 + 10_000, 10_000)]["absent"] == 1.0
    # cpu's last sample is at 21.5 s: quiet but not yet absent until 3 windows (30 s) have passed.
    assert (CPU, T0 + 40_000, 10_000) not in rows
    assert rows[(CPU, T0 + 50_000, 10_000)]["absent"] == 1.0

    minute = rows[(CPU, T0, 60_000)]
    # The 9 s sample missed its 10 s window but is in time for the minute, which is still open.
    assert (minute["count"], minute["sum"], minute["min"], minute["max"]) == (7, 124, 1, 100)
    assert minute["p50"] == float(np.quantile([1, 3, 8, 2, 4, 6, 100], 0.5))
    assert rows[(REQ, T0, 60_000)]["increase"] == 13.0
    assert (CPU, T0 + 60_000, 10_000) not in rows  # still open

    # Raw samples as they came, aggregates as <name>:<stat>_<window>s stamped at the window's end.
    tsdb = open_tsdb(f"sqlite:///{tmp_path / 'data' / 'tsdb.sqlite'}")
    try:
        value_10s = await _until_points(tsdb, {"__name__": "cpu:value_10s"}, 2, worker)
        assert value_10s[:2] == [(T0 + 10_000, 4.0), (T0 + 20_000, 3.0)]
        p95_60s = await _until_points(tsdb, {"__name__": "cpu:p95_60s"}, 1, worker)
        assert p95_60s == [(T0 + 60_000, minute["p95"])]
        raw = await _until_points(tsdb, {"__name__": "cpu", "host": "a"}, 8, worker)
        assert (T0 + 9_000, 100.0) in raw  # too late for its window, still a sample
    finally:
        await tsdb.close()


async def _until_points(
    tsdb: TimeSeriesStore, matchers: dict[str, str], count: int, worker: StreamWorker
) -> list[tuple[int, float]]:
    """The points of the one series ``matchers`` select, once it has ``count`` of them (the TSDB's rows)."""

    async def points() -> list[tuple[int, float]]:
        found = await tsdb.query_range(matchers, T0 - 60_000, T0 + 600_000)
        assert found and len(found[0].ts_ms) >= count, found
        return found[0].points()

    return await worker.eventually(points, 30, f"{count} points of {matchers} in the TSDB")
