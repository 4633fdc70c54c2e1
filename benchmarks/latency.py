"""End-to-end detection latency: from the end of the window holding an anomaly to the anomaly on ``anomalies``.

Run with ``make bench-latency`` (``python -m benchmarks.latency``; about 6 minutes).

1. ``aiops up`` (embedded broker, every service in one worker) on free ports.
2. Backfill: ``--series`` series (default 1,000) get ``--history-min`` minutes of history
   (one sample a minute: one per 1-minute window, which detection watches), posted in
   time order to the JSON metrics API and ending at the current minute, so that every
   series is past its cold start (200 windows) when the live phase begins. The minutes
   that pass while the backfill is processed are sent too: no series goes quiet.
3. Live, in real time: every 10 s each series gets a sample stamped now, for
   ``--live-min`` minutes. In each live minute but the first, five series (others each
   time) get one sample far off their level.
4. The anomalies are read back from ``anomalies``. For each spiked window, two figures:
   ``detected_at`` - window end, what an operator waits; and ``detected_at`` - the
   moment the request that closed the window was acknowledged, what the platform
   takes. A window closes once the stream's watermark passes its end plus the allowed
   lateness (5 s), i.e. with the first samples after that (10 s apart here), so 5-15 s
   of the first figure is the window becoming complete; the second is the stream
   closing it and publishing features, and the detection service scoring and publishing.

Also reported: anomalies raised on the other series (false positives) during the live
phase. Writes ``benchmarks/results/latency.json`` and ``benchmarks/results/latency.png``.
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
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from aiops_cli.replay import post_samples
from aiops_common.broker import free_port
from aiops_common.broker.reader import read_values
from aiops_common.schemas import AnomalyRecord
from aiops_common.topics import Topics

RESULTS = Path(__file__).parent / "results"
MINUTE_MS = 60_000
LIVE_STEP_S = 10.0
SPIKE = 60.0
LATENESS_MS = 5_000  # the stream's default AIOPS_STREAM_ALLOWED_LATENESS_S
SPIKES_PER_MINUTE = 5


def level(series: int, minute: int) -> float:
    """A slow daily cycle per series, phase-shifted by series."""
    return 50.0 + 10.0 * float(np.sin(2 * np.pi * (minute + 37 * series) / 1440.0))


def minute_samples(series: int, minute: int, rng: np.random.Generator, ts_ms: int) -> list[dict[str, Any]]:
    return [
        {
            "name": "bench_latency",
            "labels": {"series": str(s), "service": "bench"},
            "value": float(level(s, minute) + rng.normal(0.0, 1.0)),
            "timestamp": ts_ms,
        }
        for s in range(series)
    ]


def start_platform(workdir: Path) -> tuple[subprocess.Popen[bytes], str, str, Path]:
    http_port, broker_port = free_port(), free_port()
    env = {
        **os.environ,
        "AIOPS_DATA_DIR": str(workdir / "data"),
        "AIOPS_INGEST_HTTP_PORT": str(http_port),
        "AIOPS_INGEST_GRPC_PORT": str(free_port()),
        "AIOPS_BROKER_PORT": str(broker_port),
        "AIOPS_INGEST_MAX_SAMPLE_AGE_S": "0",
        "AIOPS_LOG_LEVEL": "INFO",
    }
    env.pop("AIOPS_BROKER_URL", None)
    log = workdir / "up.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "aiops_cli", "up", "--no-host-metrics"], env=env, stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{http_port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("aiops up exited: " + log.read_text()[-3000:])
        try:
            if httpx.get(url + "/ready", timeout=1).status_code == 200:
                return proc, url, f"kafka://127.0.0.1:{broker_port}", log
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.terminate()
    raise TimeoutError("aiops up did not become ready: " + log.read_text()[-3000:])


def wait_warm(log: Path, series: int, timeout_s: float) -> float:
    """Seconds until every series logged ``series warm``."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if log.read_text(errors="replace").count("series warm") >= series:
            return time.monotonic() - t0
        time.sleep(1.0)
    raise TimeoutError(f"not every series warmed up in {timeout_s}s: " + log.read_text()[-2000:])


def run(series: int, history_min: int, live_min: int, workdir: Path) -> dict[str, Any]:
    rng = np.random.default_rng(11)
    proc, url, broker_url, log = start_platform(workdir)
    try:
        with httpx.Client(timeout=60) as client:
            now_min = int(time.time() * 1000) // MINUTE_MS
            first = now_min - history_min
            t0 = time.monotonic()
            minute = first
            batch: list[dict[str, Any]] = []
            while minute <= int(time.time() * 1000) // MINUTE_MS:
                batch += minute_samples(series, minute - first, rng, minute * MINUTE_MS)
                if len(batch) >= 5000:
                    post_samples(client, url, batch)
                    batch = []
                minute += 1
            if batch:
                post_samples(client, url, batch)
            backfill_s = time.monotonic() - t0
            warm_s = wait_warm(log, series, timeout_s=900)
            # Fill the minutes that passed while the backfill was processed, then go live.
            while minute < int(time.time() * 1000) // MINUTE_MS:
                post_samples(client, url, minute_samples(series, minute - first, rng, minute * MINUTE_MS + 30_000))
                minute += 1

            spikes: dict[int, list[int]] = {}  # window start (ms) -> series spiked in it
            posted: list[tuple[int, float]] = []  # (sample time ms, wall time the request was acknowledged)
            live_start = time.time()
            tick = 0
            # Samples go on for 30 s after the last spike so that its window closes as the others do.
            while time.time() - live_start < live_min * 60 + 30:
                now_ms = int(time.time() * 1000)
                window = now_ms // MINUTE_MS * MINUTE_MS
                samples = minute_samples(series, now_ms // MINUTE_MS - first, rng, now_ms)
                spiking = int(live_start) // 60 < window // MINUTE_MS and now_ms < (live_start + live_min * 60) * 1000
                if spiking and window not in spikes:
                    victims = [(len(spikes) * SPIKES_PER_MINUTE + k) % series for k in range(SPIKES_PER_MINUTE)]
                    spikes[window] = victims
                    for victim in victims:
                        samples[victim]["value"] = float(samples[victim]["value"]) + SPIKE
                post_samples(client, url, samples)
                posted.append((now_ms, time.time()))
                tick += 1
                time.sleep(max(0.0, live_start + tick * LIVE_STEP_S - time.time()))
            time.sleep(15)  # the last anomaly is published
        raw = asyncio.run(read_values(broker_url, Topics.ANOMALIES, until=lambda got: False, timeout_s=15))
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
    anomalies = [AnomalyRecord.decode(v) for v in raw]
    live_from = int(live_start * 1000) // MINUTE_MS * MINUTE_MS
    latencies, after_close, missed = [], [], []
    by_window = {(int(a.window_start.timestamp() * 1000), a.labels.get("series")): a for a in anomalies}
    for window, victim in ((w, v) for w, victims in spikes.items() for v in victims):
        found = by_window.get((window, str(victim)))
        if found is None:
            others = [
                {"window_start": x.window_start.isoformat(), "score": round(x.score, 3)}
                for x in anomalies
                if x.labels.get("series") == str(victim)
            ]
            missed.append({"series": victim, "window_start": window // 1000, "its_anomalies": others})
            continue
        detected_s = found.detected_at.timestamp()
        latencies.append(detected_s - found.window_end.timestamp())
        # The request whose samples first passed the window's end plus the allowed lateness: it closed the window.
        closing = next((wall for ts, wall in posted if ts >= window + MINUTE_MS + LATENESS_MS), None)
        if closing is not None:
            after_close.append(detected_s - closing)
    false_positives = [
        {"series": a.labels.get("series"), "window_start": a.window_start.isoformat(), "detector": a.detector,
         "score": round(a.score, 3), "value": a.value, "lower": a.lower, "upper": a.upper}
        for a in anomalies
        if int(a.window_start.timestamp() * 1000) >= live_from
        and int(a.labels.get("series", -1)) not in spikes.get(int(a.window_start.timestamp() * 1000), [])
    ]  # fmt: skip
    lat, closed = np.asarray(latencies), np.asarray(after_close)
    return {
        "series": series,
        "history_min": history_min,
        "live_min": live_min,
        "live_sample_interval_s": LIVE_STEP_S,
        "backfill_samples": series * (history_min + 1),
        "backfill_post_s": round(backfill_s, 1),
        "backfill_to_warm_s": round(warm_s, 1),
        "spiked_windows": sum(len(v) for v in spikes.values()),
        "spikes_detected": len(latencies),
        "spikes_missed": len(missed),
        "missed": missed,
        "latency_s": {
            "p50": round(float(np.percentile(lat, 50)), 2) if lat.size else None,
            "p90": round(float(np.percentile(lat, 90)), 2) if lat.size else None,
            "max": round(float(lat.max()), 2) if lat.size else None,
        },
        "latency_after_close_s": {
            "p50": round(float(np.percentile(closed, 50)), 2) if closed.size else None,
            "p90": round(float(np.percentile(closed, 90)), 2) if closed.size else None,
            "max": round(float(closed.max()), 2) if closed.size else None,
        },
        "latencies_s": [round(x, 2) for x in latencies],
        "false_positive_anomalies_live": len(false_positives),
        "false_positives": false_positives,
        "series_windows_live": series * live_min,
        "cpu_count": os.cpu_count(),
    }


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    lat = result["latencies_s"]
    ax.bar(range(1, len(lat) + 1), lat, color="tab:blue", label="window end -> anomaly published")
    ax.axhline(5.0, color="gray", ls=":", label="allowed lateness (5 s)")
    for q, v in result["latency_after_close_s"].items():
        if v is not None and q != "max":
            ax.axhline(v, color="tab:orange", ls="--", lw=1, label=f"closing sample -> anomaly, {q}")
    ax.set_xlabel("spiked window")
    ax.set_ylabel("window end -> anomaly published (s)")
    ax.set_title(f"Detection latency, {result['series']} live series, samples every {LIVE_STEP_S:.0f} s")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--history-min", type=int, default=240, help="backfilled minutes per series (>= 200)")
    parser.add_argument("--live-min", type=int, default=4)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        result = run(args.series, args.history_min, args.live_min, Path(tmp))
    print(f"{'series':<34}{result['series']:>10}")
    print(f"{'backfill posted in (s)':<34}{result['backfill_post_s']:>10}")
    print(f"{'backfill to every series warm (s)':<34}{result['backfill_to_warm_s']:>10}")
    print(f"{'spiked windows / detected':<34}{result['spiked_windows']:>6} / {result['spikes_detected']}")
    for q, v in result["latency_s"].items():
        print(f"{'window end -> anomaly ' + q + ' (s)':<34}{v!s:>10}")
    for q, v in result["latency_after_close_s"].items():
        print(f"{'closing sample -> anomaly ' + q + ' (s)':<34}{v!s:>10}")
    fp, windows = result["false_positive_anomalies_live"], result["series_windows_live"]
    print(f"{'other anomalies while live':<34}{fp:>10}  (of {windows} series-windows)")
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "latency.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result, args.output / "latency.png")
    print(f"\nwrote {args.output / 'latency.json'} and {args.output / 'latency.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
