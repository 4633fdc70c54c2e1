"""Soak: ``aiops up`` fed at the benchmarked sustainable rate for minutes; memory, lag, drops, errors.

Run with ``make bench-soak`` (``python -m benchmarks.soak [--minutes 10] [--rate N]``). ``aiops up`` runs on the
embedded broker in its own data folder under a temporary directory, every port on 127.0.0.1. A load generator in this
process sends Prometheus remote-write requests (one sample of ``--batch`` series each, live timestamps, the series
cycling through ``--series``) to ingestion at ``--rate`` samples/s, for at most ``--warmup-minutes`` plus
``--minutes`` and at most that many minutes' samples. Every ``--sample-s`` seconds it records the RSS of every process
(``aiops up`` and its children, the broker among them), consumer lag per group and topic (the worker's
``aiops_consumer_lag``), drops by agent and reason (``aiops_agent_dropped_records_total``,
``aiops_stream_dropped_samples_total``), ingestion's refusals (``aiops_ingest_rejected_total``,
``aiops_ingest_broker_unavailable_total``, partial rejections) and error-level log lines. The load runs
``--warmup-minutes`` (by default until the first whole longest window has closed, so every window has closed and its
buffers have filled once) before the ``--minutes`` measured. The verdict: memory flat after warm-up (the RSS of each
platform process, averaged over each whole longest-window period after warm-up, grows by less than
``--max-slope-mb-min`` a minute: a windowed stream's buffers fill and empty once a period, and a mean over whole
periods does not depend on where in that cycle the run starts), no drop with a reason outside
``EXPECTED_DROP_REASONS``, the platform up to the end and no consumer stuck (lag held at one non-zero value for
``STUCK_S``). The embedded broker keeps every record in memory (Tansu's memory storage, no retention), so its RSS
grows with what was sent by design: it is reported as MB per million samples retained and left out of the flatness
rule.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cramjam
import httpx
import psutil
from aiops_cli.testing import PlatformProcess
from aiops_common.broker import free_port
from aiops_common.process import stop_process
from aiops_common.prompb.remote_pb2 import WriteRequest
from aiops_common.prompb.types_pb2 import Label
from aiops_stream.settings import StreamSettings

RESULTS = Path(__file__).parent / "results"

#: The rate ``aiops up`` keeps up with here, every service in one process on the SQLite stores (2 cores): measured by
#: this soak. At 33,333 samples/s (the stream benchmark's pace, the stream stage alone) the TSDB's raw-sample writer
#: took 24,500 samples/s and ``metrics.raw`` lag grew without end. At 20,000 it kept up on average but fell behind for
#: 3-6 minutes in two runs of three (lag up to 2,214 records) once the samples table passed 15 million rows: SQLite
#: stores each sample on its series' page, and its insert rate falls as the table grows (alone, ``make
#: bench-tsdb-growth``: 205,000 rows/s at 1 million rows, 105,000 at 2 million, 40,000-44,000 from 7 to 12 million).
#: 15,000 leaves that writer a margin for the soak's length.
SUSTAINABLE_RATE = 15_000

#: The growth of RSS (MB per minute, between the means of whole longest-window periods after warm-up) below which
#: memory counts as flat.
MAX_SLOPE_MB_PER_MIN = 1.0


def longest_window_s() -> float:
    """The longest window (the last roll-up) of the stream's defaults: the period its buffers fill and empty in."""
    return max(StreamSettings().window_lengths_ms) / 1000


#: After a window's end and its allowed lateness, the time its close is given before a measured period starts.
CLOSE_MARGIN_S = 30.0


def aligned_warmup_s(now_s: float) -> float:
    """A warm-up from ``now_s`` (epoch seconds) until just after the first *whole* longest window closed.

    Windows are aligned to the epoch, so the window open when the load starts is a partial one (its buffer never
    fills); the warm-up runs to the next boundary, through one whole window and its close (allowed lateness plus
    ``CLOSE_MARGIN_S``). The measured periods then start at the same point of each window's cycle, each holding
    one fill and one close. Between 1 and 2 longest windows plus half a minute (5.6 to 10.6 minutes by default).
    """
    period = longest_window_s()
    to_boundary = (period - now_s % period) % period
    return to_boundary + period + StreamSettings().stream_allowed_lateness_s + CLOSE_MARGIN_S


#: Lag held at one non-zero value this long (seconds) while records keep coming means a consumer stopped.
STUCK_S = 60.0

#: Drop reasons that are expected under a soak of well-formed live samples, and why. Any other reason, or a drop
#: without a reason label, is unexplained and fails the verdict.
EXPECTED_DROP_REASONS: dict[str, str] = {
    "late": "a sample arrived after its window closed (allowed lateness passed while the host was busy)",
    "too_late": "as late, spelled by the stream's own counter",
    "out_of_order": "a sample older than one already taken for its series",
    "duplicate": "the same sample delivered twice (at-least-once redelivery after a rebalance)",
}

_METRIC = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def default_rate() -> tuple[int, str]:
    """The rate this soak showed ``aiops up`` keeping up with on this machine (``SUSTAINABLE_RATE``)."""
    return SUSTAINABLE_RATE, "SUSTAINABLE_RATE: a rate aiops up keeps up with here, with a margin for its raw writer"


def parse_metrics(text: str) -> Iterator[tuple[str, dict[str, str], float]]:
    """(name, labels, value) of each sample of a Prometheus text exposition."""
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _METRIC.match(line)
        if m is None:
            continue
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        yield m.group(1), dict(_LABEL.findall(m.group(2) or "")), value


# -- the platform --------------------------------------------------------------------------------------


@dataclass
class Platform:
    proc: subprocess.Popen[bytes]
    ingest_url: str
    probe_url: str
    log: Path
    prefix: str


def start_platform(workdir: Path) -> Platform:
    """``aiops up`` on free loopback ports in ``workdir``, its ingestion and workers ready."""
    up = PlatformProcess.start(
        workdir / "data",
        workdir / "up.log",
        "--no-host-metrics",
        AIOPS_BROKER_PORT=str(free_port()),
        AIOPS_LOG_LEVEL="INFO",
    )
    try:
        asyncio.run(up.until_ready(timeout_s=180))
    except BaseException:
        up.stop()
        raise
    state = json.loads((up.data_dir / "state.json").read_text())
    return Platform(up.proc, up.http_url, state["probe_url"], up.log, state.get("topic_prefix", ""))


def stop_platform(proc: subprocess.Popen[bytes]) -> None:
    stop_process(proc, 60)  # SIGTERM stops the agents and the embedded broker (its own session)


# -- load ----------------------------------------------------------------------------------------------


class Load:
    """Remote-write requests of ``batch`` series each, the series cycling through ``series``, live timestamps."""

    def __init__(self, series: int, batch: int) -> None:
        self.batch = batch
        self.requests: list[WriteRequest] = []
        for start in range(0, series, batch):
            req = WriteRequest()
            for i in range(start, min(start + batch, series)):
                ts = req.timeseries.add()
                ts.labels.extend(
                    Label(name=k, value=v)
                    for k, v in sorted(
                        {
                            "__name__": f"soak_requests_{i % 10}",
                            "job": "soak",
                            "service": f"svc-{i % 50}",
                            "instance": f"10.1.{i // 250 % 250}.{i % 250}:9100",
                            "pod": f"soak-{i:06d}",
                        }.items()
                    )
                )
                ts.samples.add()
            self.requests.append(req)
        self.sent = 0

    def next_payload(self) -> tuple[bytes, int]:
        req = self.requests[self.sent % len(self.requests)]
        now_ms = int(time.time() * 1000)
        base = self.sent // len(self.requests)
        for i, ts in enumerate(req.timeseries):
            sample = ts.samples[0]
            sample.timestamp = now_ms
            sample.value = 100.0 + (base + i) % 17  # bounded, gently varying: no spike to detect
        self.sent += 1
        return bytes(cramjam.snappy.compress_raw(req.SerializeToString())), len(req.timeseries)


@dataclass
class LoadStats:
    requests: int = 0
    samples_acknowledged: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    behind_schedule_s: float = 0.0


async def generate(
    platform: Platform, load: Load, rate: int, seconds: float, max_samples: int, stats: LoadStats, stop: asyncio.Event
) -> None:
    """Send at ``rate`` samples/s on a fixed schedule, at most 4 requests in flight, until time or count runs out."""
    interval = load.batch / rate
    headers = {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf"}
    in_flight = asyncio.Semaphore(4)
    tasks: set[asyncio.Task[None]] = set()
    async with httpx.AsyncClient(base_url=platform.ingest_url, timeout=30.0) as client:

        async def send(body: bytes, n: int) -> None:
            try:
                response = await client.post("/api/v1/write", content=body, headers=headers)
                key = str(response.status_code)
                if 200 <= response.status_code < 300:
                    stats.samples_acknowledged += n
            except httpx.HTTPError as exc:
                key = type(exc).__name__
            finally:
                in_flight.release()
            stats.by_status[key] = stats.by_status.get(key, 0) + 1

        start = time.monotonic()
        sent_samples = 0
        while not stop.is_set() and time.monotonic() - start < seconds and sent_samples < max_samples:
            if platform.proc.poll() is not None:
                break  # the platform exited: the verdict says so; sending on would only count connection errors
            due = start + stats.requests * interval
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                stats.behind_schedule_s = max(stats.behind_schedule_s, -delay)
            await in_flight.acquire()
            body, n = load.next_payload()
            sent_samples += n
            stats.requests += 1
            task = asyncio.create_task(send(body, n))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)


# -- sampling ------------------------------------------------------------------------------------------


def process_label(proc: psutil.Process, root_pid: int) -> str:
    if proc.pid == root_pid:
        return "aiops up"
    try:
        cmd = " ".join(proc.cmdline())
    except psutil.Error:
        cmd = ""
    if "broker" in cmd or "kafka" in cmd.lower() or "redpanda" in cmd.lower():
        return f"broker ({proc.name()})"
    return f"{proc.name()} [{proc.pid}]"


def rss_by_process(root: psutil.Process) -> dict[str, float]:
    """RSS in MB of ``aiops up`` and every descendant, by a readable label."""
    out: dict[str, float] = {}
    for proc in [root, *root.children(recursive=True)]:
        try:
            out[process_label(proc, root.pid)] = proc.memory_info().rss / 2**20
        except psutil.Error:
            continue  # exited between listing and reading
    return out


def error_lines(log: Path) -> tuple[int, list[str]]:
    """Error-level lines (JSON log lines at level error/critical, and tracebacks), with the first few."""
    count, first = 0, list[str]()
    with log.open("rb") as f:
        for raw in f:
            line = raw.decode(errors="replace").strip()
            level = ""
            if line.startswith("{"):
                try:
                    level = str(json.loads(line).get("level", "")).lower()
                except ValueError:
                    level = ""
            if level in {"error", "critical", "exception"} or line.startswith("Traceback"):
                count += 1
                if len(first) < 5:
                    first.append(line[:2000])
    return count, first


def scrape(url: str) -> list[tuple[str, dict[str, str], float]]:
    try:
        return list(parse_metrics(httpx.get(url + "/metrics", timeout=10).text))
    except httpx.HTTPError:
        return []


def sample_once(platform: Platform, root: psutil.Process, t0: float) -> dict[str, Any]:
    worker = scrape(platform.probe_url)
    ingest = scrape(platform.ingest_url) if platform.ingest_url != platform.probe_url else []
    lag: dict[str, float] = {}
    drops: dict[str, float] = {}
    refusals: dict[str, float] = {}
    agent_rss: dict[str, float] = {}
    records_in: dict[str, float] = {}
    for name, labels, value in worker:
        if name == "aiops_consumer_lag":
            topic = labels.get("topic", "?").removeprefix(platform.prefix)
            lag[topic] = lag.get(topic, 0.0) + value
        elif name == "aiops_agent_records_in_total" and value:
            # Which of a topic's consumers is behind: every agent on it sees the same messages.
            records_in[labels.get("agent", "?")] = value
    # Counters are taken as the larger of the two answers: in ``aiops up`` both endpoints serve the one registry of the
    # process (the lag above, summed over partitions, is therefore read from the worker's alone: summed over both it
    # counted every partition twice).
    for name, labels, value in worker + ingest:
        if name == "aiops_agent_dropped_records_total":
            key = f"{labels.get('agent', '?')}/{labels.get('reason', '')}"
            drops[key] = max(drops.get(key, 0.0), value)
        elif name == "aiops_stream_dropped_samples_total":
            key = f"stream/{labels.get('reason', '')}"
            drops[key] = max(drops.get(key, 0.0), value)
        elif name in {"aiops_ingest_rejected_total", "aiops_ingest_partially_rejected_items_total"}:
            key = f"{name.removeprefix('aiops_ingest_')}/{labels.get('endpoint', '')}/{labels.get('code', '')}"
            refusals[key] = max(refusals.get(key, 0.0), value)
        elif name == "aiops_ingest_broker_unavailable_total":
            refusals["broker_unavailable"] = max(refusals.get("broker_unavailable", 0.0), value)
        elif name == "process_resident_memory_bytes":
            agent_rss["worker /metrics"] = value / 2**20
    errors, _ = error_lines(platform.log)
    alive = platform.proc.poll() is None
    return {
        "t_s": round(time.monotonic() - t0, 1),
        "alive": alive,
        "rss_mb": {k: round(v, 1) for k, v in rss_by_process(root).items()} if alive else {},
        "lag": lag,
        "records_in": records_in,
        "drops": drops,
        "refusals": refusals,
        "errors": errors,
    }


async def sample_loop(
    platform: Platform,
    every_s: float,
    t0: float,
    samples: list[dict[str, Any]],
    stats: LoadStats,
    stop: asyncio.Event,
) -> None:
    root = psutil.Process(platform.proc.pid)
    while not stop.is_set():
        sample = await asyncio.to_thread(sample_once, platform, root, t0)
        sample["samples_acknowledged"] = stats.samples_acknowledged
        samples.append(sample)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)
    # One more at the end: the state the load left, and whether the platform is still up to see it.
    sample = await asyncio.to_thread(sample_once, platform, root, t0)
    sample["samples_acknowledged"] = stats.samples_acknowledged
    samples.append(sample)


# -- verdict -------------------------------------------------------------------------------------------


def slope_mb_per_min(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, MB) in MB per minute; None with fewer than 3 points."""
    if len(points) < 3:
        return None
    n = len(points)
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    den = sum((t - mx) ** 2 for t, _ in points)
    if den == 0:
        return None
    return 60.0 * sum((t - mx) * (v - my) for t, v in points) / den


def stuck_topics(samples: list[dict[str, Any]], min_s: float = STUCK_S) -> dict[str, float]:
    """Topics whose lag stayed at the same non-zero value for ``min_s`` or longer: a consumer that stopped."""
    out: dict[str, float] = {}
    for topic in {k for s in samples for k in s["lag"]}:
        since: tuple[float, float] | None = None  # (t, lag) where the current run of equal values began
        for s in samples:
            lag = s["lag"].get(topic, 0.0)
            if since is None or lag != since[1]:
                since = (s["t_s"], lag)
            elif lag > 0 and s["t_s"] - since[0] >= min_s:
                out[topic] = max(out.get(topic, 0.0), s["t_s"] - since[0])
    return out


def whole_periods(
    points: list[tuple[float, float]], start_s: float, period_s: float
) -> list[tuple[float, list[tuple[float, float]]]]:
    """(start, its points) of each whole ``period_s`` from ``start_s`` that ``points`` cover to its end."""
    out: list[tuple[float, list[tuple[float, float]]]] = []
    begin = start_s
    while period_s > 0 and points and begin + period_s <= points[-1][0] + 1e-9:
        inside = [(t, v) for t, v in points if begin <= t < begin + period_s]
        if inside:
            out.append((begin, inside))
        begin += period_s
    return out


def period_means(periods: list[tuple[float, list[tuple[float, float]]]], period_s: float) -> list[tuple[float, float]]:
    """(mid-time, mean value) of each period."""
    return [(begin + period_s / 2, sum(v for _, v in inside) / len(inside)) for begin, inside in periods]


def period_floors(periods: list[tuple[float, list[tuple[float, float]]]]) -> list[tuple[float, float]]:
    """(time, lowest value) of each period: what survives each window's close."""
    return [min(inside, key=lambda point: (point[1], point[0])) for _, inside in periods]


def growth_mb_per_min(
    points: list[tuple[float, float]], start_s: float, period_s: float, means: list[tuple[float, float]]
) -> tuple[float | None, str]:
    """How fast memory grows after ``start_s``, and by which rule.

    With two or more whole periods: the slope through the means of the periods (a buffer that fills and empties once
    a period moves no mean; a leak moves every one). With fewer: the least-squares slope of every point after
    ``start_s``, which such a buffer tilts either way, by up to its size over the run's length.
    """
    if len(means) >= 2:
        rule = f"means of {len(means)} whole {period_s:.0f} s periods"
        if len(means) == 2:  # the line through two means (slope_mb_per_min wants three points)
            return 60.0 * (means[1][1] - means[0][1]) / period_s, rule
        return slope_mb_per_min(means), rule
    return slope_mb_per_min([(t, v) for t, v in points if t >= start_s]), "least squares (under two whole periods)"


def verdict(samples: list[dict[str, Any]], max_slope: float, warmup_s: float, period_s: float = 0.0) -> dict[str, Any]:
    exited_at = next((s["t_s"] for s in samples if not s.get("alive", True)), None)
    samples = [s for s in samples if s.get("alive", True)]  # after an exit there is nothing left to measure
    tail = [s for s in samples if s["t_s"] >= warmup_s]
    processes = sorted({p for s in samples for p in s["rss_mb"]})
    platform = [p for p in processes if not p.startswith("broker")]
    series = {p: [(s["t_s"], s["rss_mb"][p]) for s in samples if p in s["rss_mb"]] for p in processes}
    periods = {p: whole_periods(series[p], warmup_s, period_s) for p in processes}
    means = {p: period_means(periods[p], period_s) for p in processes}
    floors = {p: period_floors(periods[p]) for p in processes}
    growth = {p: growth_mb_per_min(series[p], warmup_s, period_s, means[p]) for p in processes}
    slopes = {p: slope_mb_per_min([pt for pt in series[p] if pt[0] >= warmup_s]) for p in processes}
    rss_flat = bool(tail) and all((v := growth[p][0]) is None or v < max_slope for p in platform)
    broker = [p for p in processes if p.startswith("broker")]
    acked = [s for s in samples if s.get("samples_acknowledged")]
    broker_mb_per_million = (
        {
            p: round((acked[-1]["rss_mb"][p] - samples[0]["rss_mb"][p]) / (acked[-1]["samples_acknowledged"] / 1e6), 1)
            for p in broker
            if p in acked[-1]["rss_mb"] and p in samples[0]["rss_mb"]
        }
        if acked
        else {}
    )
    lag_slope = slope_mb_per_min([(s["t_s"], sum(s["lag"].values())) for s in tail])
    empty: dict[str, Any] = {"drops": {}, "lag": {}, "errors": 0, "refusals": {}}
    last = samples[-1] if samples else empty
    unexplained = {
        k: v for k, v in last["drops"].items() if v > 0 and k.rsplit("/", 1)[-1] not in EXPECTED_DROP_REASONS
    }
    lag_tail = [sum(s["lag"].values()) for s in tail]
    stuck = stuck_topics(samples)
    return {
        "platform_exited_at_s": exited_at,
        "stuck_lag_topics_s": stuck,
        "warmup_s": warmup_s,
        "period_s": period_s,
        "rss_growth_mb_per_min_after_warmup": {p: None if v is None else round(v, 3) for p, (v, _) in growth.items()},
        "rss_growth_rule": {p: rule for p, (_, rule) in growth.items()},
        "rss_period_means_mb": {p: [[round(t), round(v, 1)] for t, v in means[p]] for p in processes},
        "rss_period_floors_mb": {p: [[round(t), round(v, 1)] for t, v in floors[p]] for p in processes},
        "rss_floor_growth_mb_per_min_after_warmup": {
            p: None if len(f) < 2 else round(60.0 * (f[-1][1] - f[0][1]) / (period_s * (len(f) - 1)), 3)
            for p, f in floors.items()
        },
        "rss_least_squares_slope_mb_per_min_after_warmup": {
            p: None if v is None else round(v, 3) for p, v in slopes.items()
        },
        "memory_flat": rss_flat,
        "memory_flat_rule_covers": platform,
        "broker_rss_mb_per_million_samples_retained": broker_mb_per_million,
        "lag_slope_records_per_min_after_warmup": None if lag_slope is None else round(lag_slope, 1),
        "drops_total": sum(last["drops"].values()),
        "unexplained_drops": unexplained,
        "no_unexplained_drops": not unexplained,
        "lag_max_after_warmup": max(lag_tail) if lag_tail else None,
        "lag_at_end": sum(last["lag"].values()),
        "refusals_at_end": last["refusals"],
        "error_lines": last["errors"],
        "goal_met": rss_flat and not unexplained and exited_at is None and not stuck,
    }


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = result["samples"]
    t = [s["t_s"] / 60 for s in samples]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 7), sharex=True)
    for proc in sorted({p for s in samples for p in s["rss_mb"]}):
        ax1.plot(t, [s["rss_mb"].get(proc, float("nan")) for s in samples], label=proc)
    verdict_ = result["verdict"]
    ax1.axvline(verdict_["warmup_s"] / 60, color="gray", ls=":", label="end of warm-up")
    for proc, means in verdict_["rss_period_means_mb"].items():
        period_min = verdict_["period_s"] / 60
        for i, (mid, mean) in enumerate(means):
            ax1.hlines(
                mean,
                mid / 60 - period_min / 2,
                mid / 60 + period_min / 2,
                colors="black",
                lw=1.5,
                label="mean of a whole longest-window period"
                if i == 0 and proc == next(iter(verdict_["rss_period_means_mb"]))
                else None,
            )
    exited = result["verdict"]["platform_exited_at_s"]
    if exited is not None:
        for ax in (ax1, ax2):
            ax.axvline(exited / 60, color="red", ls="--", label="aiops up exited")
    ax1.set_ylabel("RSS (MB)")
    ax1.set_title(
        f"Soak: aiops up at {result['rate_samples_per_s']:,} samples/s, "
        f"{result['warmup_minutes']} min warm-up + {result['minutes']} min"
    )
    ax1.legend(fontsize=8)
    topics = sorted({k for s in samples for k in s["lag"]})
    for topic in topics:
        ax2.plot(t, [s["lag"].get(topic, 0) for s in samples], label=topic)
    ax2.set_ylabel("consumer lag (records)")
    ax2.set_xlabel("minutes")
    if topics:
        ax2.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def print_table(result: dict[str, Any]) -> None:
    v = result["verdict"]
    samples = result["samples"]
    first_warm = next((s for s in samples if s["t_s"] >= v["warmup_s"]), samples[-1] if samples else {"rss_mb": {}})
    alive = [s for s in samples if s.get("alive", True)]
    last = alive[-1] if alive else {"rss_mb": {}, "lag": {}, "drops": {}}
    print(f"{'rate (samples/s)':<40}{result['rate_samples_per_s']:>12,}  ({result['rate_source']})")
    print(
        f"{'warm-up + minutes / series / batch':<40}{result['warmup_minutes']:>6} + {result['minutes']}"
        f" / {result['series']} / {result['batch']}"
    )
    print(f"{'samples acknowledged':<40}{result['load']['samples_acknowledged']:>12,}")
    print(f"{'requests by status':<40}{json.dumps(result['load']['by_status']):>12}")
    print(f"{'achieved rate (samples/s)':<40}{result['achieved_samples_per_s']:>12,.0f}")
    print(
        f"\n{'process':<28}{'RSS after warm-up':>18}{'RSS at end':>12}{'period means (MB)':>28}"
        f"{'growth MB/min':>15}{'least sq.':>11}"
    )
    for proc, growth in v["rss_growth_mb_per_min_after_warmup"].items():
        a, b = first_warm["rss_mb"].get(proc), last["rss_mb"].get(proc)
        means = " / ".join(f"{m:,.0f}" for _, m in v["rss_period_means_mb"][proc]) or "-"
        ls = v["rss_least_squares_slope_mb_per_min_after_warmup"][proc]
        print(f"{proc:<28}{a!s:>18}{b!s:>12}{means:>28}{growth!s:>15}{ls!s:>11}")
    print("  lowest RSS of each period (what survives a window's close), growth MB/min:")
    for proc, floors in v["rss_period_floors_mb"].items():
        lows = " / ".join(f"{m:,.0f}" for _, m in floors) or "-"
        print(f"    {proc:<26}{lows:>20}{v['rss_floor_growth_mb_per_min_after_warmup'][proc]!s:>12}")
    print(f"\n{'lag at end (records, by topic)':<40}{v['lag_at_end']:>12,.0f}")
    for topic, n in sorted(last["lag"].items()):
        print(f"  {topic:<38}{n:>12,.0f}")
    print(f"{'lag max after warm-up':<40}{v['lag_max_after_warmup']!s:>12}")
    print(f"{'lag slope after warm-up (/min)':<40}{v['lag_slope_records_per_min_after_warmup']!s:>12}")
    for proc, mb in v["broker_rss_mb_per_million_samples_retained"].items():
        print(f"{proc + ' MB per million samples':<40}{mb!s:>12}  (memory storage keeps every record)")
    print(f"{'drops (by agent/reason)':<40}{v['drops_total']:>12,.0f}")
    for key, n in sorted(last["drops"].items()):
        print(f"  {key:<38}{n:>12,.0f}")
    print(f"{'ingestion refusals':<40}{json.dumps(v['refusals_at_end']):>12}")
    print(f"{'error-level log lines':<40}{v['error_lines']:>12}")
    for line in result["first_error_lines"]:
        print(f"  {line[:160]}")
    print(f"{'platform exited at (s)':<40}{v['platform_exited_at_s']!s:>12}  (exit code {result['exit_code']})")
    print(f"{'topics with lag stuck >= 60 s':<40}{json.dumps(v['stuck_lag_topics_s']):>12}")
    print(
        f"\nverdict: memory flat (growth of {', '.join(v['memory_flat_rule_covers'])} after warm-up < "
        f"{result['max_slope_mb_per_min']} MB/min): {v['memory_flat']}; platform up throughout: "
        f"{v['platform_exited_at_s'] is None}; no stuck consumer: {not v['stuck_lag_topics_s']}; "
        f"unexplained drops: {v['unexplained_drops'] or 'none'}; goal met: {v['goal_met']}"
    )


def run(args: argparse.Namespace, rate: int, rate_source: str, workdir: Path) -> dict[str, Any]:
    platform = start_platform(workdir)
    try:
        load = Load(args.series, args.batch)
        stats = LoadStats()
        samples: list[dict[str, Any]] = []
        # Known only now: how far the load's start is from the next window boundary.
        warmup_s = args.warmup_minutes * 60 if args.warmup_minutes is not None else aligned_warmup_s(time.time())
        seconds = warmup_s + args.minutes * 60
        max_samples = int(rate * seconds)

        async def soak() -> float:
            stop = asyncio.Event()
            t0 = time.monotonic()
            sampler = asyncio.create_task(sample_loop(platform, args.sample_s, t0, samples, stats, stop))
            await generate(platform, load, rate, seconds, max_samples, stats, stop)
            elapsed = time.monotonic() - t0
            stop.set()
            await sampler
            return elapsed

        elapsed = asyncio.run(soak())
        _, first_errors = error_lines(platform.log)
        exit_code = platform.proc.poll()
    finally:
        stop_platform(platform.proc)
        if args.keep_log is not None:
            shutil.copyfile(platform.log, args.keep_log)
    result: dict[str, Any] = {
        "warmup_minutes": round(warmup_s / 60, 2),
        "warmup_rule": "--warmup-minutes" if args.warmup_minutes is not None else "to the first whole window's close",
        "minutes": args.minutes,
        "rate_samples_per_s": rate,
        "rate_source": rate_source,
        "series": args.series,
        "batch": args.batch,
        "sample_every_s": args.sample_s,
        "max_slope_mb_per_min": args.max_slope_mb_min,
        "expected_drop_reasons": EXPECTED_DROP_REASONS,
        "load": {
            "requests": stats.requests,
            "samples_acknowledged": stats.samples_acknowledged,
            "by_status": stats.by_status,
            "max_behind_schedule_s": round(stats.behind_schedule_s, 2),
        },
        "achieved_samples_per_s": stats.samples_acknowledged / elapsed if elapsed else 0.0,
        "per_service_memory": (
            "not separable: aiops up runs every service's agents and servers in one Python process, so its RSS is"
            " the sum; per service, lag by topic and drops by agent are told apart"
        ),
        "first_error_lines": first_errors,
        "exit_code": exit_code,
        "samples": samples,
        "machine": {"cpus": os.cpu_count(), "load_average_at_end": os.getloadavg()},
    }
    result["verdict"] = verdict(samples, args.max_slope_mb_min, warmup_s, longest_window_s())
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="measured, after the warm-up")
    parser.add_argument(
        "--warmup-minutes",
        type=float,
        default=None,
        help="load before the measured minutes (default: until the first whole longest window has closed)",
    )
    parser.add_argument("--rate", type=int, default=None, help=f"samples/s (default: {SUSTAINABLE_RATE:,})")
    parser.add_argument("--series", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=2_000, help="series per remote-write request")
    parser.add_argument("--sample-s", type=float, default=5.0)
    parser.add_argument("--max-slope-mb-min", type=float, default=MAX_SLOPE_MB_PER_MIN)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--keep-log", type=Path, default=None, help="copy aiops up's log here (it is removed otherwise)"
    )
    args = parser.parse_args(argv)
    rate, source = (args.rate, "--rate") if args.rate else default_rate()
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        result = run(args, rate, source, Path(tmp))
    print_table(result)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "soak.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result, args.output / "soak.png")
    print(f"\nwrote {args.output / 'soak.json'} and {args.output / 'soak.png'}")
    return 0 if result["verdict"]["goal_met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
