"""NAB benchmark: reproduce the published scores, then score each detection tier and the cascade.

Run with ``make bench-nab`` (``python -m benchmarks.nab --datasets ../shared/datasets/nab``).

1. Scores the published per-row outputs of numenta, windowedGaussian and null with
   this repository's scorer for every profile and checks them against
   ``results/final_results.json`` (NAB v1.0 produced those with its hill-climbing
   threshold search, so the reproduction uses it too; the exhaustive sweep of later
   NAB versions is printed beside it).
2. Streams all 58 files through fresh cascades, one process per file (two at a
   time): every point is scored against the points before it, then learned; no
   labels, no file lengths, no global min/max. Each tier's scores on every point,
   and the cascade's, go through the same one-alert-per-episode refractory filter
   and are scored with NAB's exhaustive threshold sweep, one threshold per detector
   and profile for the whole corpus.

3. Prints where each tier's standard-profile points go at its best threshold (late
   detections, missed windows, false positives) and the cascade's score at the
   detection service's default alert score, the threshold it really runs with.

Writes ``benchmarks/results/nab.json`` and ``benchmarks/results/nab.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from aiops_detection.detectors.calibration import refractory
from aiops_detection.detectors.cascade import Cascade
from aiops_detection.detectors.detector import FloatArray
from aiops_detection.detectors.nab_scorer import (
    PROFILES,
    LabelledSeries,
    NabScore,
    NabScorer,
    load_corpus,
    load_detector_results,
    load_published_scores,
)
from aiops_detection.service_settings import DetectionServiceSettings

RESULTS = Path(__file__).parent / "results"
REPRODUCED = ("numenta", "windowedGaussian", "null")
TIERS = ("tier1", "tier2", "tier3", "cascade")
REFRACTORY_PERIOD = 100
"""Points after an alert during which a score must beat the alert's to count (one global value)."""


def sampling_step_s(series: LabelledSeries, head: int = 200) -> float:
    """Median spacing of the first timestamps: what a live detector knows after a few points."""
    gaps = np.diff(series.timestamps[:head]).astype("timedelta64[ms]").astype(np.float64) / 1000.0
    return float(np.median(gaps))


def stream_file(series: LabelledSeries) -> tuple[str, dict[str, FloatArray], float]:
    """All tier scores of one file, streamed through a fresh cascade; also the seconds it took."""
    import torch

    # One process per file and at most two processes: one intra-op thread each keeps the machine at two cores.
    torch.set_num_threads(1)
    started = time.perf_counter()
    cascade = Cascade.for_sampling_step(sampling_step_s(series))
    explained = cascade.explain_many(series.values)
    raw = {
        "tier1": explained.basic_all,
        "tier2": explained.agile_all,
        "tier3": explained.robust_all,
        "cascade": explained.score,
    }
    scores = {name: refractory(block, REFRACTORY_PERIOD)[0] for name, block in raw.items()}
    return series.name, scores, time.perf_counter() - started


def reproduce(nab_dir: Path, scorer: NabScorer) -> tuple[dict[str, dict[str, float]], list[str]]:
    published = load_published_scores(nab_dir)
    names = [series.name for series in scorer.corpus]
    reproduced: dict[str, dict[str, float]] = {}
    lines = [f"{'detector':18s} {'profile':20s} {'published':>10s} {'reproduced':>11s} {'sweep':>8s}"]
    for detector in REPRODUCED:
        outputs = load_detector_results(nab_dir, detector, names)
        reproduced[detector] = {}
        for profile in PROFILES:
            score = scorer.score(outputs, profile, search="twiddle").normalised
            sweep = scorer.score(outputs, profile).normalised
            reproduced[detector][profile] = score
            expected = published[detector][profile]
            mark = "ok" if round(score, 2) == round(expected, 2) else "MISMATCH"
            lines.append(f"{detector:18s} {profile:20s} {expected:10.2f} {score:11.2f} {sweep:8.2f}  {mark}")
    return reproduced, lines


def breakdown_lines(results: dict[str, NabScore], scorer: NabScorer) -> list[str]:
    """Where each detector's standard-profile points go, in normalised points lost."""
    per_raw = 100.0 / (scorer.n_windows - scorer.null_score(PROFILES["standard"]))
    lines = [
        f"{'detector':10s} {'threshold':>9s} {'windows':>8s} {'missed':>7s} {'FP rows':>8s}"
        f" {'lost: late':>11s} {'missed':>7s} {'FP':>6s}"
    ]
    tp_weight = PROFILES["standard"].tp_weight
    for name, r in results.items():
        missed = r.fn_cost + r.fn * tp_weight  # the FN cost and the reward not earned
        lines.append(
            f"{name:10s} {r.threshold:9.3f} {r.tp:8d} {r.fn:7d} {r.fp:8d}"
            f" {r.lateness_cost * per_raw:11.2f} {missed * per_raw:7.2f} {r.fp_cost * per_raw:6.2f}"
        )
    return lines


def _breakdown_json(r: NabScore) -> dict[str, float]:
    return {
        "threshold": r.threshold,
        "windows_detected": r.tp,
        "windows_missed": r.fn,
        "false_positive_rows": r.fp,
        "raw": r.raw,
        "tp_reward": r.tp_reward,
        "fp_cost": r.fp_cost,
        "fn_cost": r.fn_cost,
        "lateness_cost": r.lateness_cost,
    }


def plot(path: Path, reproduced: dict[str, dict[str, float]], scores: dict[str, dict[str, float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = {**{f"{name} (reproduced)": values for name, values in reproduced.items()}, **scores}
    names = list(rows)
    profiles = list(PROFILES)
    width = 0.8 / len(profiles)
    fig, ax = plt.subplots(figsize=(11, 4.5))
    for k, profile in enumerate(profiles):
        xs = np.arange(len(names)) + (k - (len(profiles) - 1) / 2) * width
        ax.bar(xs, [rows[name][profile] for name in names], width, label=profile)
    ax.axhline(74.9, color="grey", linestyle="--", linewidth=1)
    ax.text(len(names) - 0.5, 75.5, "ARTime 74.9 (standard)", ha="right", fontsize=8, color="grey")
    ax.set_xticks(np.arange(len(names)), names, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("NAB score (null = 0, perfect = 100)")
    ax.set_title("NAB v1.0 corpus: published detectors reproduced, and this repository's tiers")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, required=True, help="the NAB folder (data/, labels/, results/)")
    parser.add_argument("--workers", type=int, default=2, help="processes streaming files in parallel (at most 2)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="folder for nab.json and nab.png")
    args = parser.parse_args(argv)
    workers = max(1, min(2, args.workers))

    started = time.perf_counter()
    corpus = load_corpus(args.datasets)
    scorer = NabScorer(corpus)
    reproduced, lines = reproduce(args.datasets, scorer)
    print("\n".join(lines))
    if any(line.endswith("MISMATCH") for line in lines):
        print("the scorer does not reproduce the published scores; own scores would mean nothing", file=sys.stderr)
        return 1

    outputs: dict[str, dict[str, FloatArray]] = {name: {} for name in TIERS}
    seconds = 0.0
    # Longest files first, so the two workers finish together.
    ordered = sorted(corpus, key=len, reverse=True)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for name, tier_scores, spent in pool.map(stream_file, ordered):
            seconds += spent
            for tier, values in tier_scores.items():
                outputs[tier][name] = values
    scores = {
        tier: {profile: scorer.score(outputs[tier], profile).normalised for profile in PROFILES} for tier in TIERS
    }
    standard = {tier: scorer.score(outputs[tier], "standard") for tier in TIERS}
    alert_score = DetectionServiceSettings.model_fields["detect_alert_score"].default
    at_alert = {profile: scorer.score_at(outputs["cascade"], profile, alert_score) for profile in PROFILES}
    elapsed = time.perf_counter() - started

    print(f"\n{'detector':10s} " + " ".join(f"{profile:>20s}" for profile in PROFILES))
    for tier in TIERS:
        print(f"{tier:10s} " + " ".join(f"{scores[tier][profile]:20.2f}" for profile in PROFILES))
    print("\nstandard profile at each detector's best threshold; points lost (of 100) to late detections,")
    print("missed windows (the FN cost plus the reward not earned) and false positives:")
    print("\n".join(breakdown_lines(standard, scorer)))
    print(
        f"\ncascade at the service's default alert score {alert_score}: "
        + ", ".join(f"{p} {r.normalised:.2f}" for p, r in at_alert.items())
    )
    rows = sum(len(series) for series in corpus)
    print(f"\n{len(corpus)} files, {rows} rows; streaming {seconds:.0f} s in {workers} workers, {elapsed:.0f} s in all")

    args.output.mkdir(parents=True, exist_ok=True)
    result = {
        "reproduced": reproduced,
        "scores": scores,
        "breakdown": {tier: _breakdown_json(r) for tier, r in standard.items()},
        "cascade_at_alert_score": {"alert_score": alert_score, **{p: r.normalised for p, r in at_alert.items()}},
    }
    (args.output / "nab.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(args.output / "nab.png", reproduced, scores)
    print(f"wrote {args.output / 'nab.json'} and {args.output / 'nab.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
