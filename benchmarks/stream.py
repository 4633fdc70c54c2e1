"""Stream-layer benchmark: samples/s through the window aggregator against a raw consume+decode, RSS, latency."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import psutil
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiops_cli.testing import worker_env
from aiops_common.broker import EmbeddedBroker, Publisher, bootstrap_servers, ensure_topics
from aiops_common.broker.publisher import Message
from aiops_common.schemas import MetricBatch, MetricKind, SeriesMeta
from aiops_common.schemas.metrics import shard_of
from aiops_common.topics import Topics

__all__ = ["main"]

RESULTS = Path(__file__).parent / "results"
SCRAPE_MS = 10_000
T0 = 1_700_000_100_000  # a multiple of 300 s


@dataclass
class Workload:
    """``series`` series sharded over the metrics.raw partitions; one batch per partition per scrape."""

    series: int
    partitions: int

    def __post_init__(self) -> None:
        metas = [
            SeriesMeta(
                "http_requests_total" if i % 2 else "cpu_usage",
                {"instance": f"host-{i // 50}", "i": str(i)},
                MetricKind.COUNTER if i % 2 else MetricKind.GAUGE,
            )
            for i in range(self.series)
        ]
        shard = np.array([shard_of(m.key, self.partitions) for m in metas])
        self.by_partition = [[m for m, s in zip(metas, shard, strict=True) if s == p] for p in range(self.partitions)]
        self.rng = np.random.default_rng(1)

    def tick(self, i: int) -> list[tuple[int, bytes, int]]:
        """(partition, encoded batch, max ts) for scrape ``i``."""
        out = []
        for part, metas in enumerate(self.by_partition):
            n = len(metas)
            ts = T0 + i * SCRAPE_MS + self.rng.integers(0, 2_000, n)
            value = np.where(np.arange(n) % 2, i * 10.0 + self.rng.integers(0, 5, n), self.rng.normal(50, 5, n))
            batch = MetricBatch(metas, np.arange(n, dtype=np.uint32), ts.astype(np.int64), value)
            out.append((part, batch.encode(), int(ts.max())))
        return out


def start_worker(broker_url: str, prefix: str, data_dir: Path, log_path: Path) -> subprocess.Popen[bytes]:
    env = worker_env(broker_url, prefix, data_dir, log_level="WARNING", stream_tsdb_enabled="false")
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "aiops_cli", "worker", "stream"], env=env, stdout=log, stderr=subprocess.STDOUT
        )


async def publish(broker_url: str, prefix: str, items: list[tuple[int, bytes, int]]) -> None:
    pub = Publisher(broker_url, prefix)
    await pub.start()
    try:
        for part, value, _ in items:
            await pub.publish([Message(Topics.METRICS_RAW, value, key=str(part).encode(), partition=part)])
    finally:
        await pub.stop()


async def raw_consume_rate(broker_url: str, topic: str, partitions: int, total: int) -> float:
    """Samples/s of a plain aiokafka consumer reading and decoding the same batches (the ceiling)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers(broker_url),
        enable_auto_commit=False,
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=32 * 1024 * 1024,
    )
    await consumer.start()
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    seen = 0
    start = time.perf_counter()
    while seen < total:
        for records in (await consumer.getmany(timeout_ms=1000)).values():
            for record in records:
                seen += len(MetricBatch.decode(record.value))
    elapsed = time.perf_counter() - start
    await consumer.stop()
    return seen / elapsed


def window_rows(value: bytes) -> tuple[int, dict[tuple[int, int], int]]:
    """The input partition and the rows per (window end, length) of an encoded FeatureBatch.

    Only the batch id and two columns are read:
    the watcher shares the worker's CPUs, and decoding every
    batch's series table and matrix would take time from the worker it measures.
    """
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(value)
    columns: dict[str, Any] = {}
    for _ in range(unpacker.read_map_header()):
        if unpacker.unpack() != "body":
            unpacker.skip()
            continue
        for _ in range(unpacker.read_map_header()):
            field = unpacker.unpack()
            if field in ("start", "length", "id"):
                columns[field] = unpacker.unpack()
            else:
                unpacker.skip()
    length = np.frombuffer(columns["length"], dtype="<i8")
    end = np.frombuffer(columns["start"], dtype="<i8") + length
    pairs, counts = np.unique(np.stack([end, length]), axis=1, return_counts=True)
    # Batch ids are "<source>/<input partition>/<closed marks>#<features partition>".
    partition = int(columns["id"].split("/")[1])
    return partition, {(e, n): c for (e, n), c in zip(pairs.T.tolist(), counts.tolist(), strict=True)}


class FeatureWatch:
    """Reads ``features`` as they arrive, noting when each window's rows came."""

    def __init__(self, broker_url: str, topic: str) -> None:
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers(broker_url), enable_auto_commit=False)
        self.topic = topic
        self.arrivals: list[tuple[float, int, int, int, int]] = []  # (wall time, input partition, end, length, rows)

    async def start(self) -> None:
        await self.consumer.start()
        tps = [TopicPartition(self.topic, p) for p in range(Topics.FEATURES.partitions)]
        self.consumer.assign(tps)
        await self.consumer.seek_to_beginning(*tps)

    async def poll(self) -> None:
        for records in (await self.consumer.getmany(timeout_ms=100)).values():
            now = time.perf_counter()
            for record in records:
                partition, windows = window_rows(record.value)
                for (end, length), rows in windows.items():
                    self.arrivals.append((now, partition, end, length, rows))

    def rows_for(self, end: int, length: int) -> int:
        return sum(r for _, _, e, n, r in self.arrivals if e == end and n == length)

    async def until_rows(self, end: int, length: int, want: int, worker: subprocess.Popen[bytes], log: Path) -> None:
        deadline = time.monotonic() + 240
        while self.rows_for(end, length) < want:
            if time.monotonic() > deadline or worker.poll() is not None:
                raise RuntimeError(f"stream worker did not finish: {(await asyncio.to_thread(log.read_text))[-3000:]}")
            await self.poll()

    async def stop(self) -> None:
        await self.consumer.stop()


async def throughput_phase(broker_url: str, work: Workload, ticks: int, tmp: Path) -> dict[str, Any]:
    """Pre-loaded scrapes: the raw consume+decode rate, then the worker's rate on the same batches, and its RSS."""
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    await ensure_topics(broker_url, prefix)
    items = [item for i in range(ticks) for item in work.tick(i)]
    total = work.series * ticks
    await publish(broker_url, prefix, items)
    raw = await raw_consume_rate(broker_url, Topics.METRICS_RAW.full_name(prefix), work.partitions, total)

    watch = FeatureWatch(broker_url, Topics.FEATURES.full_name(prefix))
    await watch.start()
    log = tmp / "throughput.log"
    worker = start_worker(broker_url, prefix, tmp / "throughput", log)
    first_end = T0 + SCRAPE_MS
    last_end = last_closed_end(T0 + (ticks - 1) * SCRAPE_MS + 2_000)
    try:
        await watch.until_rows(last_end, SCRAPE_MS, work.series, worker, log)
        rss_mb = psutil.Process(worker.pid).memory_info().rss / 2**20
    finally:
        worker.terminate()
        worker.wait(30)
        await watch.stop()
    t_first = min(t for t, _, e, n, _ in watch.arrivals if e == first_end and n == SCRAPE_MS)
    t_last = max(t for t, _, e, n, _ in watch.arrivals if e == last_end and n == SCRAPE_MS)
    # Between the first window's features and the last one's, the worker took in this many scrapes.
    processed = work.series * ((last_end - first_end) // SCRAPE_MS)
    rate = processed / (t_last - t_first)
    return {"samples_per_s": rate, "raw_consume_per_s": raw, "total_samples": total, "rss_loaded_mb": rss_mb}


def last_closed_end(max_ts: int) -> int:
    """End of the last 10 s window a partition whose latest sample is ``max_ts`` has closed (5 s lateness)."""
    return (max_ts - 5_000) // SCRAPE_MS * SCRAPE_MS


async def latency_phase(broker_url: str, work: Workload, ticks: int, pace_s: float, tmp: Path) -> dict[str, Any]:
    """Scrapes produced at a steady pace; latency from the message that lets a window close to its features."""
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    await ensure_topics(broker_url, prefix)
    watch = FeatureWatch(broker_url, Topics.FEATURES.full_name(prefix))
    await watch.start()
    log = tmp / "latency.log"
    worker = start_worker(broker_url, prefix, tmp / "latency", log)
    pub = Publisher(broker_url, prefix)
    await pub.start()
    produced: list[tuple[float, int, int]] = []  # (wall time, input partition, 10 s window end it closes)
    try:
        # The worker joins its group and reads one tiny batch: its RSS before it holds any series.
        warmup = MetricBatch(
            [SeriesMeta("bench_up", {})], np.zeros(1, np.uint32), np.array([T0 - SCRAPE_MS]), np.ones(1)
        )
        await pub.publish([Message(Topics.METRICS_RAW, warmup.encode(), partition=0)])
        await until_committed(broker_url, prefix, 1)
        rss_idle = psutil.Process(worker.pid).memory_info().rss / 2**20
        for i in range(ticks):
            start = time.perf_counter()
            tick = work.tick(i)
            await pub.publish([Message(Topics.METRICS_RAW, v, partition=p) for p, v, _ in tick])
            now = time.perf_counter()
            produced.extend((now, p, last_closed_end(m)) for p, _, m in tick)
            while time.perf_counter() - start < pace_s:
                await watch.poll()
        await watch.until_rows(max(end for _, _, end in produced), SCRAPE_MS, work.series, worker, log)
        rss_active = psutil.Process(worker.pid).memory_info().rss / 2**20
    finally:
        await pub.stop()
        worker.terminate()
        worker.wait(30)
        await watch.stop()
    latencies = []
    for arrived, partition, window_end, length, _ in watch.arrivals:
        trigger = next((t for t, p, end in produced if p == partition and end >= window_end), None)
        if length == SCRAPE_MS and trigger is not None:
            latencies.append(arrived - trigger)
    return {
        "latencies": latencies,
        "window_close_to_features_p50_s": float(np.percentile(latencies, 50)),
        "window_close_to_features_p99_s": float(np.percentile(latencies, 99)),
        "rss_idle_mb": rss_idle,
        "rss_active_mb": rss_active,
        "load_samples_per_s": work.series / pace_s,
    }


async def until_committed(broker_url: str, prefix: str, offset: int, timeout_s: float = 90) -> None:
    """Wait until the worker's group has committed ``offset`` on metrics.raw partition 0 (it is up and reading)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers(broker_url), group_id=f"{prefix}aiops-stream", enable_auto_commit=False
    )
    await consumer.start()
    tp = TopicPartition(Topics.METRICS_RAW.full_name(prefix), 0)
    deadline = time.monotonic() + timeout_s
    try:
        while (await consumer.committed(tp) or 0) < offset:
            if time.monotonic() > deadline:
                raise RuntimeError("the stream worker did not start reading")
            await asyncio.sleep(0.2)  # polling a remote state with a deadline
    finally:
        await consumer.stop()


def plot(result: dict[str, Any], latencies: list[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    names = ["raw consume+decode", "stream (windows -> features)"]
    values = [result["raw_consume_per_s"] / 1e6, result["samples_per_s"] / 1e6]
    left.bar(names, values, color=["#888888", "#2b7bba"])
    left.set_ylabel("million samples / s")
    left.set_title(f"Throughput (ratio {result['ratio_vs_raw']:.0%})")
    right.hist(latencies, bins=30, color="#2b7bba")
    right.axvline(result["window_close_to_features_p99_s"], color="red", label="p99")
    right.set_xlabel("seconds from window-closing message to features")
    right.set_title("Window close -> features latency")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    import tempfile

    started = time.monotonic()
    work = Workload(args.series, Topics.METRICS_RAW.partitions)
    with tempfile.TemporaryDirectory() as tmpdir, EmbeddedBroker(log_path=Path(tmpdir) / "broker.log") as broker:
        tmp = Path(tmpdir)
        tp = await throughput_phase(broker.url, work, args.ticks, tmp)
        lat = await latency_phase(broker.url, work, args.latency_ticks, args.pace_s, tmp)
    result = {
        "samples_per_s": tp["samples_per_s"],
        "raw_consume_per_s": tp["raw_consume_per_s"],
        "ratio_vs_raw": tp["samples_per_s"] / tp["raw_consume_per_s"],
        "rss_mb_per_100k_series": (lat["rss_active_mb"] - lat["rss_idle_mb"]) * 100_000 / args.series,
        "window_close_to_features_p50_s": lat["window_close_to_features_p50_s"],
        "window_close_to_features_p99_s": lat["window_close_to_features_p99_s"],
        "series": args.series,
        "samples_in_throughput_run": tp["total_samples"],
        "scrape_interval_s": SCRAPE_MS / 1000,
        "windows_s": [10, 60, 300],
        "rss_worker_idle_mb": lat["rss_idle_mb"],
        "rss_worker_active_mb": lat["rss_active_mb"],
        "rss_worker_after_backlog_mb": tp["rss_loaded_mb"],
        "latency_pace_s_per_scrape": args.pace_s,
        "latency_load_samples_per_s": lat["load_samples_per_s"],
        "cpu_count": os.cpu_count(),
        "load_average_1m_at_end": os.getloadavg()[0],
        "run_s": time.monotonic() - started,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "stream.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result, lat["latencies"], RESULTS / "stream.png")
    return result


def main() -> None:
    """``make bench-stream``: an embedded broker, the stream worker as a subprocess, a plain aiokafka consumer."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--series", type=int, default=100_000)
    parser.add_argument("--ticks", type=int, default=15, help="scrapes pre-loaded for the throughput run")
    # 30 scrapes end just before the first 5 min window closes: the RSS is taken with its buffer full.
    parser.add_argument("--latency-ticks", type=int, default=30, help="scrapes produced at a steady pace")
    parser.add_argument("--pace-s", type=float, default=3.0, help="wall seconds between paced scrapes")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    rows = [
        ("samples/s through the stream layer", f"{result['samples_per_s']:,.0f}"),
        ("raw aiokafka consume+decode samples/s", f"{result['raw_consume_per_s']:,.0f}"),
        ("ratio vs raw (goal >= 50%)", f"{result['ratio_vs_raw']:.1%}"),
        ("RSS MB per 100k active series", f"{result['rss_mb_per_100k_series']:.1f}"),
        ("window close -> features p50 (s)", f"{result['window_close_to_features_p50_s']:.3f}"),
        ("window close -> features p99 (s)", f"{result['window_close_to_features_p99_s']:.3f}"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value:>14}")
    print(f"wrote {RESULTS / 'stream.json'} and {RESULTS / 'stream.png'}")


if __name__ == "__main__":
    main()
