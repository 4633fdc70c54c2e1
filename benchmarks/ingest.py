"""Ingestion throughput: remote write and OTLP samples/s per core, side by side with Prometheus.

Run with ``make bench-ingest``. The same remote-write payloads go to the ingestion
service (decode -> normalize -> acknowledged publish to the embedded broker) and to
Debian's Prometheus (decode -> append to its TSDB head and WAL). Throughput per
core is samples divided by the CPU seconds the receiving process used, read from
/proc, so the load generator and the broker sharing the machine do not distort it.
A stage breakdown (where the time goes) is measured in process on the same payloads.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cramjam
import httpx
import psutil
from aiops_common.broker import EmbeddedBroker, Publisher, ensure_topics, free_port
from aiops_common.prompb.remote_pb2 import WriteRequest
from aiops_common.prompb.types_pb2 import Label, Sample
from aiops_common.testing import PrometheusServer
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

RESULTS = Path(__file__).parent / "results"


@dataclass(frozen=True)
class Workload:
    requests: int
    series_per_request: int
    start_ms: int

    @property
    def samples(self) -> int:
        return self.requests * self.series_per_request


def _series_labels(i: int) -> list[tuple[str, str]]:
    return sorted(
        [
            ("__name__", f"http_requests_total_{i % 20}"),
            ("job", "api"),
            ("instance", f"10.0.{i // 250 % 250}.{i % 250}:9100"),
            ("service", f"svc-{i % 37}"),
            ("method", ("GET", "POST", "PUT")[i % 3]),
            ("code", ("200", "404", "500")[i % 3]),
            ("zone", f"eu-west-1{'abc'[i % 3]}"),
            ("pod", f"api-{i:06d}"),
        ]
    )


def remote_write_payloads(w: Workload) -> list[bytes]:
    """Snappy-compressed WriteRequests: each one sample of ``series_per_request`` series, 15 s apart."""
    labels = [[Label(name=k, value=v) for k, v in _series_labels(i)] for i in range(w.series_per_request)]
    out = []
    for r in range(w.requests):
        req = WriteRequest()
        ts = w.start_ms + r * 15_000
        for i, lab in enumerate(labels):
            series = req.timeseries.add()
            series.labels.extend(lab)
            series.samples.append(Sample(value=float(r * 7 + i), timestamp=ts))
        out.append(bytes(cramjam.snappy.compress_raw(req.SerializeToString())))
    return out


def otlp_payloads(w: Workload) -> list[bytes]:
    """The same series and values as OTLP gauges, grouped by service as SDKs send them."""
    out = []
    for r in range(w.requests):
        req = ExportMetricsServiceRequest()
        by_service: dict[str, Any] = {}
        ts_ns = (w.start_ms + r * 15_000) * 1_000_000
        for i in range(w.series_per_request):
            lab = dict(_series_labels(i))
            svc = lab.pop("service")
            name = lab.pop("__name__")
            if svc not in by_service:
                rm = req.resource_metrics.add()
                attr = rm.resource.attributes.add()
                attr.key, attr.value.string_value = "service.name", svc
                by_service[svc] = rm.scope_metrics.add()
            metric = by_service[svc].metrics.add()
            metric.name = name
            point = metric.gauge.data_points.add()
            point.time_unix_nano = ts_ns
            point.as_double = float(r * 7 + i)
            for k, v in lab.items():
                a = point.attributes.add()
                a.key, a.value.string_value = k, v
        out.append(req.SerializeToString())
    return out


def _cpu_seconds(pid: int) -> float:
    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system)


async def _post_all(url: str, payloads: Sequence[bytes], headers: dict[str, str], concurrency: int) -> list[int]:
    queue = list(reversed(payloads))
    codes: list[int] = []
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=concurrency)) as client:

        async def sender() -> None:
            while queue:
                body = queue.pop()
                response = await client.post(url, content=body, headers=headers)
                codes.append(response.status_code)

        await asyncio.gather(*(sender() for _ in range(concurrency)))
    return codes


@dataclass
class Run:
    name: str
    samples: int
    wall_s: float
    cpu_s: float

    @property
    def per_core(self) -> float:
        return self.samples / self.cpu_s

    @property
    def wall_rate(self) -> float:
        return self.samples / self.wall_s


def measure(name: str, pid: int, url: str, payloads: Sequence[bytes], headers: dict[str, str], samples: int) -> Run:
    # Warm-up on the first payloads so imports, JIT-free caches and connections are settled.
    asyncio.run(_post_all(url, payloads[:3], headers, 1))
    cpu0, t0 = _cpu_seconds(pid), time.perf_counter()
    # One request at a time: concurrent requests would reach Prometheus out of order (a 400 there).
    codes = asyncio.run(_post_all(url, payloads[3:], headers, concurrency=1))
    wall, cpu = time.perf_counter() - t0, _cpu_seconds(pid) - cpu0
    bad = [c for c in codes if c >= 300]
    if bad:
        raise RuntimeError(f"{name}: {len(bad)} requests failed, e.g. HTTP {bad[0]}")
    return Run(name, samples * (len(payloads) - 3) // len(payloads), wall, cpu)


def stage_breakdown(payloads: Sequence[bytes], broker_url: str) -> dict[str, float]:
    """CPU seconds per million samples in each stage of the remote-write path, measured in process.

    The series cache is warmed with the first payload, as the server's is by the
    warm-up requests; ``normalize_new_series`` is the normalize stage with an empty
    cache (every series seen for the first time), for comparison.
    """
    from aiops_common.topics import Topics
    from aiops_ingestion import normalize as nz
    from aiops_ingestion.publishing import RecordPublisher
    from aiops_ingestion.settings import IngestionSettings

    settings = IngestionSettings(ingest_max_sample_age_s=0)
    limits, enricher = nz.Limits.from_settings(settings), nz.Enricher.from_settings(settings)
    cache = nz.SeriesCache(settings.ingest_series_cache_size)
    parts = Topics.METRICS_RAW.partitions
    stages = {
        "snappy_and_protobuf_decode": 0.0,
        "normalize": 0.0,
        "partition_and_encode": 0.0,
        "acknowledged_publish": 0.0,
        "normalize_new_series": 0.0,
    }
    samples = 0
    nz.normalize_remote_write(nz.parse_remote_write(payloads[0], limits), limits, enricher, parts, cache=cache)

    async def run() -> None:
        nonlocal samples
        publisher = Publisher(broker_url, "stages.")
        await publisher.start()
        for body in payloads[1:]:
            t0 = time.process_time()
            req = nz.parse_remote_write(body, limits)
            t1 = time.process_time()
            builder = nz.normalize_remote_write(req, limits, enricher, parts, cache=cache)
            t2 = time.process_time()
            messages = RecordPublisher.metric_messages(builder)
            t3 = time.process_time()
            await publisher.publish(messages)
            t4 = time.process_time()
            nz.normalize_remote_write(req, limits, enricher, parts, cache=nz.SeriesCache(len(builder) + 2))
            t5 = time.process_time()
            samples += len(builder)
            stages["snappy_and_protobuf_decode"] += t1 - t0
            stages["normalize"] += t2 - t1
            stages["partition_and_encode"] += t3 - t2
            stages["acknowledged_publish"] += t4 - t3
            stages["normalize_new_series"] += t5 - t4
        await publisher.stop()

    asyncio.run(run())
    return {k: v / samples * 1e6 for k, v in stages.items()}


def start_ingestion(broker_url: str, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "AIOPS_BROKER_URL": broker_url,
        "AIOPS_TOPIC_PREFIX": "bench.",
        "AIOPS_DATA_DIR": str(workdir / "data"),
        "AIOPS_INGEST_HTTP_PORT": str(port),
        "AIOPS_INGEST_GRPC_PORT": str(free_port()),
        "AIOPS_INGEST_MAX_SAMPLE_AGE_S": "0",
        "AIOPS_LOG_LEVEL": "WARNING",
    }
    log = (workdir / "ingestion.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "aiops_cli", "worker", "ingestion"], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/ready", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise TimeoutError("ingestion did not become ready: " + (workdir / "ingestion.log").read_text()[-2000:])


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    names = ["remote write\n(aiops)", "OTLP protobuf\n(aiops)", "remote write\n(Prometheus)"]
    values = [result["remote_write_samples_per_s"], result["otlp_samples_per_s"], result["prometheus_samples_per_s"]]
    ax1.bar(names, values, color=["#3b7dd8", "#5aa469", "#d8893b"])
    ax1.set_ylabel("samples / s per core")
    ax1.set_title(f"Ingestion throughput (ratio vs Prometheus {result['ratio_vs_prometheus']:.2f}x)")
    stages = result["remote_write_stage_s_per_million"]
    ax2.barh(list(stages), list(stages.values()), color="#888")
    ax2.set_xlabel("CPU seconds per million samples")
    ax2.set_title("Where the remote-write time goes")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=120)
    parser.add_argument("--series", type=int, default=2000, help="series (samples) per request")
    args = parser.parse_args(argv)
    if PrometheusServer.binary() is None:
        print("Debian's prometheus is required: apt-get install prometheus", file=sys.stderr)
        return 2

    start_ms = int(time.time() * 1000) - args.requests * 15_000 - 60_000
    workload = Workload(args.requests, args.series, start_ms)
    rw = remote_write_payloads(workload)
    otlp = otlp_payloads(Workload(args.requests, args.series, start_ms))
    rw_headers = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"}
    otlp_headers = {"Content-Type": "application/x-protobuf"}

    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        work = Path(tmp)
        asyncio.run(ensure_topics(broker.url, "bench."))
        asyncio.run(ensure_topics(broker.url, "stages."))
        proc, url = start_ingestion(broker.url, work)
        broker_cpu0 = _cpu_seconds(broker._proc.pid) if broker._proc else 0.0
        try:
            rw_run = measure("remote write (aiops)", proc.pid, url + "/api/v1/write", rw, rw_headers, workload.samples)
            otlp_run = measure("OTLP (aiops)", proc.pid, url + "/v1/metrics", otlp, otlp_headers, workload.samples)
        finally:
            proc.terminate()
            proc.wait(20)
        broker_cpu = (_cpu_seconds(broker._proc.pid) if broker._proc else 0.0) - broker_cpu0
        with PrometheusServer(work / "prometheus", {"global": {"scrape_interval": "1h"}}) as prom:
            assert prom.proc is not None
            prom_run = measure(
                "remote write (Prometheus)", prom.proc.pid, prom.url + "/api/v1/write", rw, rw_headers, workload.samples
            )
        stages = stage_breakdown(rw[:40], broker.url)

    result = {
        "workload": {"requests": args.requests, "samples_per_request": args.series, "labels_per_series": 8},
        "remote_write_samples_per_s": round(rw_run.per_core),
        "otlp_samples_per_s": round(otlp_run.per_core),
        "prometheus_samples_per_s": round(prom_run.per_core),
        "ratio_vs_prometheus": round(rw_run.per_core / prom_run.per_core, 3),
        "otlp_ratio_vs_prometheus": round(otlp_run.per_core / prom_run.per_core, 3),
        "wall_clock_samples_per_s": {r.name: round(r.wall_rate) for r in (rw_run, otlp_run, prom_run)},
        "cpu_seconds": {r.name: round(r.cpu_s, 3) for r in (rw_run, otlp_run, prom_run)},
        "broker_cpu_seconds_during_aiops_runs": round(broker_cpu, 3),
        "remote_write_stage_s_per_million": {k: round(v, 3) for k, v in stages.items()},
        "unit": "samples per CPU-second of the receiving process (= per core)",
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ingest.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result, RESULTS / "ingest.png")

    print(f"{'receiver':<28}{'samples/s/core':>16}{'wall samples/s':>16}{'cpu s':>8}")
    for r in (rw_run, otlp_run, prom_run):
        print(f"{r.name:<28}{r.per_core:>16,.0f}{r.wall_rate:>16,.0f}{r.cpu_s:>8.2f}")
    print(f"\nratio vs Prometheus (remote write): {result['ratio_vs_prometheus']:.2f}x")
    print("remote-write stages, CPU s per million samples:")
    for k, v in stages.items():
        print(f"  {k:<30}{v:>8.3f}")
    print(f"\nwrote {RESULTS / 'ingest.json'} and {RESULTS / 'ingest.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
