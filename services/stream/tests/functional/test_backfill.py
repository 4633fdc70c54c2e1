"""History sent to a running worker whose partition clock is at now: windowed by the series' own time."""

from __future__ import annotations

import re

import httpx
import pytest
from aiops_common.broker import Publisher
from aiops_common.schemas import MetricBatchBuilder, MetricKind
from aiops_common.topics import Topics

from ..conftest import StreamWorker, TopicReader, feature_rows, send

pytestmark = pytest.mark.functional

NOW = 1_800_000_000_000  # the partition's event time: a multiple of 60 s
TWO_WEEKS_AGO = NOW - 14 * 86_400_000
HOST = 'host_cpu{host="a"}'
REPLAYED = 'latency_ms{service="web"}'
HISTORY_MINUTES = 180


def host(from_s: int, to_s: int) -> bytes:
    """The host series every 5 s of ``[NOW + from_s, NOW + to_s)``, one message."""
    builder = MetricBatchBuilder()
    for s in range(from_s, to_s, 5):
        builder.add("host_cpu", {"host": "a"}, NOW + s * 1000, float(s % 11), MetricKind.GAUGE)
    return builder.build().encode()


def history(first: int, last: int) -> bytes:
    """Minutes ``[first, last)`` of a two-week-old series, one sample a minute, and an old host sample."""
    builder = MetricBatchBuilder()
    for minute in range(first, last):
        builder.add("latency_ms", {"service": "web"}, TWO_WEEKS_AGO + minute * 60_000 + 30_000, float(minute))
    # The host series has windows closed up to now: a sample of it from then is late, and dropped.
    builder.add("host_cpu", {"host": "a"}, TWO_WEEKS_AGO + first * 60_000, 1.0, MetricKind.GAUGE)
    return builder.build().encode()


async def test_a_replayed_series_two_weeks_old_is_windowed_while_live_samples_hold_the_clock_at_now(
    stream_worker: type[StreamWorker], publisher: Publisher, features: TopicReader
) -> None:
    worker = stream_worker(stream_window_s=10, stream_rollups="[60]", stream_tsdb_enabled=False)
    # Live samples move partition 0's event time to now and close its first windows.
    await send(publisher, Topics.METRICS_RAW, host(0, 60))
    await features.until(lambda values: (HOST, NOW, 10_000) in feature_rows(values), 90, worker)

    # Three hours from two weeks ago, in three requests, while the host keeps reporting.
    for part in range(3):
        first = part * HISTORY_MINUTES // 3
        await send(publisher, Topics.METRICS_RAW, history(first, first + HISTORY_MINUTES // 3))
        await send(publisher, Topics.METRICS_RAW, host(60 + 10 * part, 70 + 10 * part))
    # The replayed series is quiet from here on: the host's time closes its last windows.
    await send(publisher, Topics.METRICS_RAW, host(90, 120))

    def minutes(values: list) -> list[int]:
        rows = feature_rows(values)
        return [m for m in range(HISTORY_MINUTES) if (REPLAYED, TWO_WEEKS_AGO + m * 60_000, 60_000) in rows]

    def host_windows(values: list) -> list[int]:
        rows = feature_rows(values)
        return [s for s in range(0, 100, 10) if (HOST, NOW + s * 1000, 10_000) in rows]

    # The two series' rows go to the features partitions of their own shards, read in no set order: wait for both.
    await features.until(
        lambda values: len(minutes(values)) == HISTORY_MINUTES and len(host_windows(values)) == 10, 90, worker
    )
    rows = feature_rows(features.values)
    for m in range(HISTORY_MINUTES):
        minute = rows[(REPLAYED, TWO_WEEKS_AGO + m * 60_000, 60_000)]
        assert (minute["count"], minute["mean"], minute["absent"]) == (1.0, float(m), 0.0)
    # Its 10 s windows too: the one with the sample, and absent rows once it has been quiet for 30 s.
    assert rows[(REPLAYED, TWO_WEEKS_AGO + 30_000, 10_000)]["count"] == 1.0
    assert any(k[0] == REPLAYED and k[2] == 10_000 and r["absent"] == 1.0 for k, r in rows.items())
    # The host's windows went on at now, one row each, the late samples in none of them.
    host_rows = [rows[(HOST, NOW + s * 1000, 10_000)] for s in range(0, 100, 10)]
    assert [r["count"] for r in host_rows] == [2.0] * 10
    # The three late host samples were dropped, counted by reason in the worker's /metrics ...
    counted = 'aiops_stream_dropped_samples_total{reason="late",stage="metrics"} 3.0'

    async def metrics() -> str | None:
        try:
            async with httpx.AsyncClient(timeout=5.0) as client:
                text = (await client.get(worker.probe_url + "/metrics")).text
        except httpx.TransportError:
            return None
        return text if counted in text else None

    text = await worker.eventually(metrics, 30, "the late samples in the worker's /metrics")
    assert "series_clock_limit" not in text
    # ... and logged, rate-limited: one line at first, the rest with the next line after 10 s.
    lines = [line for line in worker.log().splitlines() if "samples dropped" in line]
    assert lines and "reason=late" in lines[0] and "stage=metrics" in lines[0], worker.log()
    logged = sum(int(m) for m in re.findall(r"samples=(\d+)", "\n".join(lines)))
    assert 1 <= logged <= 3
