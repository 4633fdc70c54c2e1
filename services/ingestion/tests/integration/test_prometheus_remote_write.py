"""Debian's Prometheus scrapes a real node exporter and remote-writes to the ingestion service."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cramjam
import httpx
import pytest
from aiops_common.broker import EmbeddedBroker
from aiops_common.broker.reader import read_values
from aiops_common.process import suspended
from aiops_common.prompb import remote_pb2, types_pb2
from aiops_common.schemas import MetricBatch, MetricKind
from aiops_common.testing import NodeExporter, PrometheusServer
from aiops_common.testing.eventually import eventually, scaled
from aiops_common.topics import Topics

pytestmark = pytest.mark.integration


def _prometheus_config(targets: list[str], write_url: str) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "node", "static_configs": [{"targets": targets}]}],
        "remote_write": [
            {
                "url": write_url,
                "queue_config": {"batch_send_deadline": "500ms", "min_backoff": "100ms", "max_backoff": "1s"},
            }
        ],
    }


def _samples(values: list[bytes], name: str) -> list[tuple[dict[str, str], str, int, float]]:
    return [
        (dict(meta.labels), meta.kind.value, ts, value)
        for raw in values
        for meta, ts, value in MetricBatch.decode(raw).samples()
        if meta.name == name
    ]


def test_scraped_samples_arrive_with_prometheus_labels(ingestion: Any, external_server: Callable[..., Any]) -> None:
    node = external_server(NodeExporter)
    target = node.url.removeprefix("http://")
    prom = external_server(PrometheusServer, config=_prometheus_config([target], ingestion.http_url + "/api/v1/write"))

    def arrived(values: list[bytes]) -> bool:
        return bool(_samples(values, "up")) and bool(_samples(values, "node_cpu_seconds_total"))

    values = asyncio.run(
        read_values(ingestion.broker_url, Topics.METRICS_RAW, ingestion.prefix, until=arrived, timeout_s=scaled(30))
    )
    up = _samples(values, "up")
    assert up, "no `up` sample arrived"
    labels, _kind, ts, value = up[0]
    assert value == 1.0
    assert labels["job"] == "node" and labels["instance"] == target
    assert abs(ts / 1000 - time.time()) < 120
    cpu = _samples(values, "node_cpu_seconds_total")
    assert {k for _lab, k, _t, _v in cpu} == {MetricKind.COUNTER.value}
    # The label sets are exactly the ones Prometheus stored itself (plus our `service` label).
    stored = httpx.get(prom.url + "/api/v1/series", params={"match[]": "node_cpu_seconds_total"}).json()["data"]
    ours = {tuple(sorted((k, v) for k, v in lab.items() if k != "service")) for lab, *_ in cpu}
    theirs = {tuple(sorted((k, v) for k, v in s.items() if k != "__name__")) for s in stored}
    assert ours and ours <= theirs
    # Prometheus' own account of what it sent: something, and not one sample failed or was dropped.
    sent = _remote_storage_counters(prom.url)
    assert sent["prometheus_remote_storage_samples_total"] > 0, sent
    assert sent["prometheus_remote_storage_samples_failed_total"] == 0, sent
    assert sent["prometheus_remote_storage_samples_dropped_total"] == 0, sent


def _remote_storage_counters(prometheus_url: str) -> dict[str, float]:
    """The sender's remote-write counters from its /metrics, summed over remote queues."""
    names = (
        "prometheus_remote_storage_samples_total",
        "prometheus_remote_storage_samples_failed_total",
        "prometheus_remote_storage_samples_dropped_total",
    )
    totals = dict.fromkeys(names, 0.0)
    for line in httpx.get(prometheus_url + "/metrics", timeout=10).text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in totals:
            totals[name] += float(line.rsplit(" ", 1)[1])
    return totals


def test_broker_outage_gets_503_and_prometheus_retries_land(
    tmp_path: Path, external_server: Callable[..., Any], ingestion_factory: Callable[..., Any]
) -> None:
    # Its own broker: the outage must not touch other tests' topics.
    with EmbeddedBroker(log_path=tmp_path / "broker.log") as broker:
        service = ingestion_factory(broker.url, "outage.", AIOPS_PUBLISH_TIMEOUT_S="2")
        try:
            _outage(broker, service, external_server)
        finally:
            service.stop()  # before its broker goes away, so it can leave its consumer group


def _outage(broker: EmbeddedBroker, service: Any, external_server: Callable[..., Any]) -> None:
    node = external_server(NodeExporter)
    write_url = service.http_url + "/api/v1/write"
    prom = external_server(PrometheusServer, config=_prometheus_config([node.url.removeprefix("http://")], write_url))

    def up_times(values: list[bytes]) -> list[int]:
        return sorted({ts for _l, _k, ts, _v in _samples(values, "up")})

    def read(until: Callable[[list[bytes]], bool]) -> list[bytes]:
        return asyncio.run(read_values(broker.url, Topics.METRICS_RAW, "outage.", until=until, timeout_s=scaled(60)))

    assert len(up_times(read(lambda v: len(up_times(v)) >= 2))) >= 2

    assert broker._proc is not None
    pid = broker._proc.pid
    with suspended(pid):  # the broker hangs: nothing sent to it is acknowledged
        outage_start = time.time()
        refused = httpx.post(
            write_url,
            content=_one_sample_write_request(),
            headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"},
            timeout=30,
        )
        assert refused.status_code == 503, refused.text
        assert int(refused.headers["Retry-After"]) > 0
        assert httpx.get(service.http_url + "/ready", timeout=10).status_code == 503

        # At least 6 s, and until Prometheus has scraped 4 times in it: its retries have samples to carry.
        def outage_done() -> bool:
            return time.time() - outage_start >= 6 and _scraped_since(prom.url, outage_start) >= 4

        asyncio.run(eventually(outage_done, timeout=60, what="4 scrapes by Prometheus during the outage"))
    outage_end = time.time()

    after = up_times(read(lambda v: bool(up_times(v)) and up_times(v)[-1] / 1000 > outage_end + 3))
    during = [t for t in after if outage_start * 1000 <= t <= outage_end * 1000]
    assert len(during) >= 4, f"samples scraped during the outage did not land: {during}"
    gaps = [b - a for a, b in itertools.pairwise(after)]
    assert max(gaps) < 2500, f"a gap of {max(gaps)} ms: acknowledged or retried data was lost"
    prom.stop()  # while ingestion still answers, so its remote-write queue drains at once


def _scraped_since(prometheus_url: str, since_s: float) -> int:
    """How many ``up`` samples Prometheus has stored (scraped) at or after ``since_s``."""
    response = httpx.get(prometheus_url + "/api/v1/query", params={"query": "up[5m]"}, timeout=10)
    series = response.json()["data"]["result"]
    return sum(1 for s in series for ts, _value in s["values"] if float(ts) >= since_s)


def _one_sample_write_request() -> bytes:
    req = remote_pb2.WriteRequest()
    ts = req.timeseries.add()
    ts.labels.extend([types_pb2.Label(name="__name__", value="outage_probe"), types_pb2.Label(name="job", value="t")])
    ts.samples.append(types_pb2.Sample(value=1.0, timestamp=int(time.time() * 1000)))
    return bytes(cramjam.snappy.compress_raw(req.SerializeToString()))
