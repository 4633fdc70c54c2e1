"""Detection throughput: series x points per second for each tier and the cascade, and tier-3 inference.

Run with ``make bench-detect`` (``python -m benchmarks.detect``).

- Batch form (``score_many`` / ``explain_many``) over a block of synthetic 5-minute
  series with a daily cycle, noise, spikes and level shifts: what backfills and the
  ``features`` agent pay per point, model refits included.
- Streaming form (``score_one`` then ``learn_one``) on one series: the cost per point
  of a live series.
- Tier 3 inference alone: windows per second through the trained autoencoder in
  large batches, on the CPU and, when torch sees one, on the GPU.
- Tier 1 as the detection service runs it: one new window for each of N warm series
  per call, series by series (``score_one``, ``expected_band``, ``learn_one`` on each
  series' detector, as before) and in one ``RobustBandPanel.step`` over all of them.

One torch thread and one process: figures are per core. Writes
``benchmarks/results/detect.json`` and ``benchmarks/results/detect.png``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from aiops_detection.detectors.cascade import Cascade
from aiops_detection.detectors.detector import Detector
from aiops_detection.detectors.robust_band import RobustBandDetector, RobustBandPanel
from aiops_detection.detectors.seasonal_forecast import SeasonalForecastDetector
from aiops_detection.detectors.seasonality import candidate_periods
from aiops_detection.detectors.window_model import WindowModelDetector, resolve_device

RESULTS = Path(__file__).parent / "results"
STEP_S = 300.0


def synthetic_block(n_series: int, n_points: int, seed: int = 0) -> np.ndarray:
    """Daily cycles at 5-minute steps with noise, a few spikes and one level shift per series."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_points)
    phase = rng.uniform(0, 2 * np.pi, (n_series, 1))
    block = 100 + 20 * np.sin(2 * np.pi * t / 288 + phase) + rng.normal(0, 2, (n_series, n_points))
    for row in block:
        row[rng.integers(300, n_points, 3)] += rng.uniform(20, 60, 3)
        row[rng.integers(n_points // 2, n_points) :] += 25
    return block


def tiers() -> dict[str, Callable[[], Detector[float]]]:
    periods = candidate_periods(STEP_S)
    return {
        "tier1": RobustBandDetector,
        "tier2": lambda: SeasonalForecastDetector(periods=periods),
        "tier3": lambda: WindowModelDetector(periods=periods, device="cpu"),
        "cascade": lambda: Cascade(
            agile=SeasonalForecastDetector(periods=periods), robust=WindowModelDetector(periods=periods, device="cpu")
        ),
    }


def batch_rate(make: Callable[[], Detector[float]], block: np.ndarray) -> float:
    started = time.perf_counter()
    make().score_many(block)
    return block.size / (time.perf_counter() - started)


def streaming_cost_us(make: Callable[[], Detector[float]], values: np.ndarray) -> float:
    detector = make()
    started = time.perf_counter()
    for x in values.tolist():
        detector.score_one(x)
        detector.learn_one(x)
    return (time.perf_counter() - started) / values.size * 1e6


def inference_rate(device: str, windows: int, repeats: int = 3) -> float:
    """Windows per second through a trained tier-3 model, one big batch at a time."""
    detector = WindowModelDetector(device=device)
    values = synthetic_block(1, 1200)[0]
    for x in values.tolist():
        detector.learn_one(x)
    fit = detector._fit
    assert fit is not None
    series = np.tile(values, windows // values.size + 1)[: windows + detector.window - 1]
    index = np.arange(series.size)
    detector._errors(fit, series[:1000], index[:1000])  # warm-up: kernels, allocations
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(repeats):
        detector._errors(fit, series, index)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return windows * repeats / (time.perf_counter() - started)


def service_tier1_rates(n_series: int, calls: int, warmup: int = 300) -> dict[str, float]:
    """Windows per second of tier 1 on ``n_series`` warm series, one window per series per call."""
    values = synthetic_block(n_series, warmup + calls, seed=2)
    panel = RobustBandPanel(RobustBandDetector())
    rows = np.array([panel.add() for _ in range(n_series)])
    for t in range(warmup):
        panel.step(rows, values[:, t])
    detectors = [panel.take(int(row)) for row in rows]  # the same warm states, one detector per series
    columns = values[:, warmup:].T.tolist()

    started = time.perf_counter()
    for t in range(calls):
        panel.step(rows, values[:, warmup + t])
    panel_rate = n_series * calls / (time.perf_counter() - started)

    started = time.perf_counter()
    for column in columns:
        for detector, x in zip(detectors, column, strict=True):
            detector.score_one(x)
            detector.expected_band()
            detector.learn_one(x)
    per_series_rate = n_series * calls / (time.perf_counter() - started)
    return {"per_series": per_series_rate, "panel": panel_rate}


def plot(path: Path, result: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(15, 4))
    names = list(result["batch_points_per_s"])
    left.bar(names, [result["batch_points_per_s"][n] for n in names], label="batch (score_many)")
    left.bar(names, [1e6 / result["streaming_us_per_point"][n] for n in names], alpha=0.6, label="streaming")
    left.set_yscale("log")
    left.set_ylabel("series x points per second (one core)")
    left.legend(fontsize=8)
    left.set_title("Per tier, CPU")
    service = result["service_tier1"]
    middle.bar(["series by series", "panel"], [service["per_series"], service["panel"]], color="tab:orange")
    middle.set_yscale("log")
    middle.set_ylabel("windows per second (one core)")
    middle.set_title(f"Tier 1, {service['series']:,} series x 1 window per call")
    devices = list(result["tier3_inference_windows_per_s"])
    right.bar(devices, [result["tier3_inference_windows_per_s"][d] for d in devices], color="tab:green")
    right.set_yscale("log")
    right.set_ylabel("windows per second")
    right.set_title("Tier 3 inference, large batches")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=16)
    parser.add_argument("--points", type=int, default=4032, help="points per series (4032 = 14 days at 5 min)")
    parser.add_argument("--stream-points", type=int, default=3000)
    parser.add_argument("--windows", type=int, default=1_000_000, help="windows per tier-3 inference batch")
    parser.add_argument("--service-series", type=int, default=10_000, help="series of the service-shaped tier-1 run")
    parser.add_argument("--service-calls", type=int, default=20, help="windows per series in that run")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    block = synthetic_block(args.series, args.points)
    stream = synthetic_block(1, args.stream_points, seed=1)[0]
    gpu = resolve_device().type == "cuda"
    print(f"torch {torch.__version__}; tier 3 device: {resolve_device()}; one thread")
    batch = {name: batch_rate(make, block) for name, make in tiers().items()}
    streaming = {name: streaming_cost_us(make, stream) for name, make in tiers().items()}
    service = service_tier1_rates(args.service_series, args.service_calls)
    inference = {"cpu": inference_rate("cpu", args.windows)}
    if gpu:
        inference["cuda"] = inference_rate("cuda", args.windows)
    else:
        print("cuda: not available, tier 3 measured on the CPU only")

    print(f"\n{'tier':8s} {'batch pts/s':>14s} {'stream us/pt':>14s}")
    for name in batch:
        print(f"{name:8s} {batch[name]:14,.0f} {streaming[name]:14.1f}")
    print(f"\nblock: {args.series} series x {args.points} points; stream: {args.stream_points} points")
    print(f"\ntier 1 in the service: {args.service_series:,} series x 1 window per call, {args.service_calls} calls")
    print(f"{'series by series':18s} {service['per_series']:14,.0f} windows/s")
    print(f"{'panel':18s} {service['panel']:14,.0f} windows/s  ({service['panel'] / service['per_series']:.0f}x)")
    for device, rate in inference.items():
        print(f"tier 3 inference on {device}: {rate:,.0f} windows/s")

    result = {
        "device": str(resolve_device()),
        "block": {"series": args.series, "points": args.points},
        "batch_points_per_s": batch,
        "streaming_us_per_point": streaming,
        "tier3_inference_windows_per_s": inference,
        "service_tier1": {"series": args.service_series, "calls": args.service_calls, **service},
    }
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "detect.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(args.output / "detect.png", result)
    print(f"wrote {args.output / 'detect.json'} and {args.output / 'detect.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
