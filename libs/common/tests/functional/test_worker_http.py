"""A real stream worker's probe server: /health, /ready once it has its partitions, /metrics with lag and drops."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from aiops_cli.testing import WorkerProcess, worker_env
from aiops_common.broker import Publisher, free_port
from aiops_common.broker.publisher import Message
from aiops_common.schemas import MetricBatchBuilder, MetricKind
from aiops_common.topics import Topics
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.functional

T = TypeVar("T")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def poll(check: Callable[[], T | None], what: str, worker: WorkerProcess, budget_s: float = 120.0) -> T:
    """``check()`` until it returns something; the worker's log tail when it does not within the budget."""
    deadline = time.monotonic() + budget_s
    while time.monotonic() < deadline:
        assert worker.proc.poll() is None, f"worker exited while waiting for {what}:\n{worker.log()[-3000:]}"
        found = check()
        if found is not None:
            return found
        time.sleep(0.2)
    pytest.fail(f"{what} not seen in {budget_s} s:\n{worker.log()[-3000:]}")


def get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=2.0)
    except httpx.HTTPError:
        return None


def scrape(url: str) -> Samples:
    response = get(url + "/metrics")
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
    env = worker_env(broker_url, topic_prefix, tmp_path / "data", worker_http_port=port, stream_tsdb_enabled="false")
    worker = WorkerProcess.start("stream", env, tmp_path / "stream.log")
    yield worker, f"http://127.0.0.1:{port}"
    worker.stop()


async def test_probes_lag_records_and_undecodable_drops(
    stream_worker: tuple[WorkerProcess, str], publisher: Publisher, topic_prefix: str
) -> None:
    worker, url = stream_worker
    health = poll(
        lambda: r if (r := get(url + "/health")) is not None and r.status_code == 200 else None, "/health 200", worker
    )
    assert health.json()["status"] == "ok"

    ready = poll(
        lambda: r if (r := get(url + "/ready")) is not None and r.status_code == 200 else None, "/ready 200", worker
    )
    assert ready.json()["status"] == "ready"
    assert ready.json()["assigned_partitions"] > 0

    builder = MetricBatchBuilder()
    builder.add("cpu", {"host": "a"}, int(time.time() * 1000), 1.0, MetricKind.GAUGE)
    good = builder.build().encode()
    await publisher.publish([Message(Topics.METRICS_RAW, good, key=b"0", partition=0)])
    await publisher.publish([Message(Topics.METRICS_RAW, b"\x00 not a batch", key=b"0", partition=0)])

    raw = f"{topic_prefix}{Topics.METRICS_RAW.name}"

    def counted() -> Samples | None:
        samples = scrape(url)
        dropped = value(samples, "aiops_agent_dropped_records_total", agent="window_aggregator", reason="undecodable")
        taken = value(samples, "aiops_agent_records_in_total", agent="window_aggregator")
        # Every input partition the worker holds has a lag figure, not only the one written to.
        lags = [value(samples, "aiops_consumer_lag", topic=raw, partition=str(p)) for p in range(partitions)]
        return samples if dropped == 1 and taken == 2 and None not in lags else None

    partitions = Topics.METRICS_RAW.partitions
    samples = poll(counted, "two records in, one undecodable drop and the lag of every metrics.raw partition", worker)
    assert value(samples, "aiops_agent_batch_seconds_count", agent="window_aggregator") == 2
    assert all(value(samples, "aiops_consumer_lag", topic=raw, partition=str(p)) == 0 for p in range(1, partitions))
    assert "skipping input" in worker.log()

    # Lag follows the committed offsets: once the worker has committed both messages, partition 0 has none.
    poll(
        lambda: True if value(scrape(url), "aiops_consumer_lag", topic=raw, partition="0") == 0 else None,
        "no lag on metrics.raw partition 0 once its messages are committed",
        worker,
    )
