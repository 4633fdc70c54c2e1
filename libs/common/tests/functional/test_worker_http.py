"""A real stream worker's probe server: /health, /ready once it has its partitions, /metrics with lag and drops."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from aiops_cli.testing import STARTUP_S, WorkerProcess, worker_env
from aiops_common.broker import Publisher, free_port
from aiops_common.broker.publisher import Message
from aiops_common.schemas import MetricBatchBuilder, MetricKind
from aiops_common.topics import Topics
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.functional

T = TypeVar("T")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def poll(check: Callable[[], Awaitable[T | None]], what: str, worker: WorkerProcess, budget_s: float) -> T:
    """``check()`` until it returns something, through ``eventually()``; the worker's log tail if it does not."""
    return await worker.eventually(check, budget_s, what)


async def get(url: str) -> httpx.Response | None:
    try:
        async with httpx.AsyncClient(timeout=5.0) as client:
            return await client.get(url)
    except httpx.HTTPError:
        return None


async def status_200(url: str) -> httpx.Response | None:
    response = await get(url)
    return response if response is not None and response.status_code == 200 else None


async def scrape(url: str) -> Samples:
    response = await get(url + "/metrics")
    if response is None or response.status_code != 200:
        return {}
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


@pytest.fixture
def stream_worker(broker_url: str, topic_prefix: str, tmp_path: Path) -> Iterator[tuple[WorkerProcess, str]]:
    """``aiops worker stream`` with its probe server on a known free port (windows only, no TSDB)."""
    port = free_port()
    env = worker_env(
        broker_url,
        topic_prefix,
        tmp_path / "data",
        worker_http_port=port,
        stream_tsdb_enabled="false",
        heap_trim_interval_s="0.5",
    )
    worker = WorkerProcess.start("stream", env, tmp_path / "stream.log")
    worker.probe_url = f"http://127.0.0.1:{port}"
    yield worker, worker.probe_url
    worker.stop()


async def test_probes_lag_records_and_undecodable_drops(
    stream_worker: tuple[WorkerProcess, str], publisher: Publisher, topic_prefix: str
) -> None:
    worker, url = stream_worker
    health = await poll(lambda: status_200(url + "/health"), "/health 200", worker, STARTUP_S)
    assert health.json()["status"] == "ok"

    # The budgets after this one start once the worker holds its partitions.
    ready = await poll(lambda: status_200(url + "/ready"), "/ready 200", worker, STARTUP_S)
    assert ready.json()["status"] == "ready"
    assert ready.json()["assigned_partitions"] > 0

    builder = MetricBatchBuilder()
    builder.add("cpu", {"host": "a"}, int(time.time() * 1000), 1.0, MetricKind.GAUGE)
    good = builder.build().encode()
    await publisher.publish([Message(Topics.METRICS_RAW, good, key=b"0", partition=0)])
    await publisher.publish([Message(Topics.METRICS_RAW, b"\x00 not a batch", key=b"0", partition=0)])

    raw = f"{topic_prefix}{Topics.METRICS_RAW.name}"

    async def counted() -> Samples | None:
        samples = await scrape(url)
        dropped = value(samples, "aiops_agent_dropped_records_total", agent="window_aggregator", reason="undecodable")
        taken = value(samples, "aiops_agent_records_in_total", agent="window_aggregator")
        # Every input partition the worker holds has a lag figure, not only the one written to.
        lags = [value(samples, "aiops_consumer_lag", topic=raw, partition=str(p)) for p in range(partitions)]
        return samples if dropped == 1 and taken == 2 and None not in lags else None

    partitions = Topics.METRICS_RAW.partitions
    samples = await poll(
        counted, "two records in, one undecodable drop and the lag of every metrics.raw partition", worker, 120
    )
    assert value(samples, "aiops_agent_batch_seconds_count", agent="window_aggregator") == 2
    assert all(value(samples, "aiops_consumer_lag", topic=raw, partition=str(p)) == 0 for p in range(1, partitions))
    assert "skipping input" in worker.log()

    # Lag follows the committed offsets: once the worker has committed both messages, partition 0 has none.
    async def no_lag() -> bool:
        return value(await scrape(url), "aiops_consumer_lag", topic=raw, partition="0") == 0

    await poll(no_lag, "no lag on metrics.raw partition 0 once its messages are committed", worker, 120)

    # The C heap's figures, and its free pages handed back on the worker's timer.
    async def trimmed() -> Samples | None:
        samples = await scrape(url)
        trims = value(samples, "aiops_process_heap_trims_total")
        return samples if trims is not None and trims >= 2 else None

    samples = await poll(trimmed, "two heap trims counted", worker, 60)
    in_use, free = (
        value(samples, "aiops_process_heap_bytes", state="in_use"),
        value(samples, "aiops_process_heap_bytes", state="free"),
    )
    assert in_use is not None and in_use > 10e6  # a worker with numpy, Faust and aiokafka loaded
    assert free is not None and 0 <= free < in_use
    assert (value(samples, "aiops_process_heap_trim_seconds_total") or 0) > 0
