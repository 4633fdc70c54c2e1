"""Root-cause analysis beside its peers: CIRCA's simulator, PetShop, our own simulator, and incident -> result latency.

Run with ``make bench-rca`` (``python -m benchmarks.rca [--quick]``).

Every method runs on the same cases in the same run: the engine (``aiops_rca.engine.analyze``), BARO
(``fse-baro``'s robust scorer, given the anomaly time), CIRCA (``circa-clue``'s RHT with descendant
adjustment, given the true graph; on CIRCA's simulator only, where the true graph is known) and a
random ranking. PyRCA (``sfr-pyrca``) does not install here: its dependency javabridge fails to build.
Each suite is described in its own module (``circa_sim``, ``petshop``, ``simulator``, ``latency``) and
in docs/rca-benchmarks.md. Writes ``benchmarks/results/rca.json`` and ``benchmarks/results/rca.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.rca import circa_sim, latency, petshop, simulator
from benchmarks.rca.methods import Method, baro, ours, peer_versions, random_ranking, robust_z

RESULTS = Path(__file__).parent.parent / "results"
NOT_INSTALLABLE = {
    "sfr-pyrca": "not installable: its dependency javabridge fails to build here, so none of its methods run"
}
PUBLISHED_CIRCA: dict[str, Any] = {
    "source": "Pham et al., ASE 2024 (BARO paper), Avg@5 on CIRCA's simulator",
    "10": {"baro": 0.92, "circa": 0.34, "granger_pagerank": 0.40, "random": 0.30},
    "50": {"baro": 0.87, "circa": 0.06, "granger_pagerank": 0.06, "random": 0.06},
}


def _methods(names: Sequence[str]) -> dict[str, Method]:
    known: dict[str, Callable[[], Method]] = {
        "ours": lambda: ours,
        "baro": lambda: baro,
        "circa": lambda: circa_sim.circa,
        "random": lambda: random_ranking(0),
        "robust-z": lambda: robust_z(),
    }
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown methods {unknown}; known: {sorted(known)}")
    return {n: known[n]() for n in names}


def _guard(run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """A method that fails on a suite is reported with its error, and the other methods still run."""
    started = time.perf_counter()
    try:
        out = run()
    except Exception as exc:  # the engine or a peer failing is a result to print, not a reason to stop
        return {"error": f"{type(exc).__name__}: {exc}"[:300], "seconds": time.perf_counter() - started}
    out["seconds"] = time.perf_counter() - started
    return out


def run_circa(methods: dict[str, Method], shape: circa_sim.SimShape) -> dict[str, Any]:
    started = time.perf_counter()
    circa_sim.generate(shape)
    out: dict[str, Any] = {
        "shape": asdict(shape),
        "generate_s": time.perf_counter() - started,
        "methods": {},
        "published": PUBLISHED_CIRCA,
    }
    for name, method in methods.items():
        print(f"  circa simulator: {name}", flush=True)
        out["methods"][name] = _guard(lambda m=method: circa_sim.evaluate(m, shape))  # type: ignore[misc]
    mine = out["methods"].get("ours", {})
    if "50" in mine:
        out["goals"] = {"avg5_50>=0.95": mine["50"]["avg5"] >= 0.95, "ac1_50>=0.85": mine["50"]["ac1"] >= 0.85}
    return out


def run_petshop(methods: dict[str, Method], dataset: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"dataset": str(dataset), "methods": {}, "published": petshop.PUBLISHED}
    for name, method in methods.items():
        if name == "circa":
            continue  # CIRCA needs the true causal graph and one series per node: it runs on its own simulator
        print(f"  petshop: {name}", flush=True)
        result = _guard(lambda m=method: petshop.evaluate(m, dataset))  # type: ignore[misc]
        if name != "ours":
            result.pop("issues", None)
        out["methods"][name] = result
    mine = out["methods"].get("ours", {})
    if "recall" in mine:
        lat = [mine["recall"][g]["latency"] for g in petshop.GROUPS]
        avail = [mine["recall"][g]["availability"] for g in petshop.GROUPS]
        spec = [v for g in petshop.GROUPS for v in mine["specificity"][g].values() if v is not None]
        out["goals"] = {
            "latency_top1>=0.80": all(r["top1"] >= 0.80 for r in lat),
            "latency_top3>=0.90": all(r["top3"] >= 0.90 for r in lat),
            "availability_top3==1": all(r["top3"] >= 1.0 for r in avail),
            "specificity>=0.80": all(v >= 0.80 for v in spec),
        }
    return out


def run_simulator(methods: dict[str, Method], shape: simulator.SimShape) -> dict[str, Any]:
    started = time.perf_counter()
    simulator.generate(shape)
    out: dict[str, Any] = {"shape": asdict(shape), "generate_s": time.perf_counter() - started, "methods": {}}
    for name, method in methods.items():
        if name == "circa":
            continue  # several series per service and no causal graph of series: outside what CIRCA takes
        print(f"  own simulator: {name}", flush=True)
        result = _guard(lambda m=method: simulator.evaluate(m, shape))  # type: ignore[misc]
        if name != "ours":
            result.pop("misses", None)
        out["methods"][name] = result
    mine = out["methods"].get("ours", {})
    if "ac1" in mine:
        out["goals"] = {"ac1>=0.90": mine["ac1"] >= 0.90}
    return out


def run_latency(runs: int) -> dict[str, Any]:
    print("  latency: gather + analyze", flush=True)
    out = _guard(lambda: latency.measure(runs))
    if "total" in out:
        out["goals"] = {"p95<2s": out["total"]["p95_s"] < 2.0}
    return out


# --- the table ---------------------------------------------------------------------------------------------


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def table(result: dict[str, Any], names: list[str]) -> list[str]:
    cols = [n for n in names]
    head = f"{'suite':42s} " + " ".join(f"{c:>9s}" for c in cols) + f"  {'published':30s} goal"
    lines = [head, "-" * len(head)]

    def row(label: str, values: dict[str, str], published: str = "", goal: str = "") -> None:
        lines.append(
            f"{label:42s} " + " ".join(f"{values.get(c, '-'):>9s}" for c in cols) + f"  {published:24s} {goal}"
        )

    def err(suite: dict[str, Any], name: str) -> str | None:
        m = suite["methods"].get(name)
        return None if m is None else ("error" if "error" in m else None)

    if "circa_sim" in result:
        suite = result["circa_sim"]
        for size in map(str, suite["shape"]["sizes"]):
            for key, label in (("ac1", "AC@1"), ("ac3", "AC@3"), ("avg5", "Avg@5")):
                vals = {
                    n: err(suite, n) or _fmt(m[size][key])
                    for n, m in suite["methods"].items()
                    if size in m or "error" in m
                }
                pub = ""
                if key == "avg5" and size in PUBLISHED_CIRCA:
                    p = PUBLISHED_CIRCA[size]
                    pub = f"BARO {p['baro']:.2f} CIRCA {p['circa']:.2f} rnd {p['random']:.2f}"
                circa_goal = {"avg5": ">= 0.95", "ac1": ">= 0.85"}.get(key, "") if size == "50" else ""
                row(f"CIRCA sim {size} nodes {label}", vals, pub, circa_goal)
            secs = {n: _fmt(m[size]["seconds_per_case"]) for n, m in suite["methods"].items() if size in m}
            row(f"CIRCA sim {size} nodes seconds per case", secs)
    if "petshop" in result:
        suite = result["petshop"]
        published = petshop.PUBLISHED["recall"]
        for group in petshop.GROUPS:
            for kind in petshop.ISSUE_TYPES:
                for k in ("top1", "top3"):
                    vals = {}
                    for n, m in suite["methods"].items():
                        vals[n] = err(suite, n) or _fmt(m["recall"][group][kind][k], 2)
                    goal = {"latency": {"top1": ">= 0.80", "top3": ">= 0.90"}, "availability": {"top3": "1.0"}}
                    label = f"PetShop {group} {kind} {k.replace('top', 'top-')}"
                    row(label, vals, f"graph traversal {published[group][kind][k]:.2f}", goal[kind].get(k, ""))
            for kind in petshop.ISSUE_TYPES:
                vals = {}
                for n, m in suite["methods"].items():
                    vals[n] = err(suite, n) or _fmt(m["specificity"][group][kind], 2)
                pub_spec = "graph trav. 0.17-0.60" if kind == "latency" else ""
                row(f"PetShop {group} {kind} specificity", vals, pub_spec, ">= 0.80")
        secs = {n: _fmt(m["seconds_per_issue"]) for n, m in suite["methods"].items() if "error" not in m}
        row("PetShop seconds per issue", secs)
    if "simulator" in result:
        suite = result["simulator"]
        for key, label in (("ac1", "AC@1"), ("ac3", "AC@3"), ("avg5", "Avg@5")):
            vals = {n: err(suite, n) or _fmt(m[key]) for n, m in suite["methods"].items()}
            row(f"own simulator {label}", vals, "", ">= 0.90" if key == "ac1" else "")
        secs = {n: _fmt(m["seconds_per_case"]) for n, m in suite["methods"].items() if "error" not in m}
        row("own simulator seconds per case", secs)
    if "latency" in result:
        lat = result["latency"]
        if "error" in lat:
            row("latency incident -> result", {"ours": "error"})
        else:
            for part in ("total", "gather", "analyze"):
                for q in ("p50_s", "p95_s"):
                    lat_goal = "< 2 s" if part == "total" and q == "p95_s" else ""
                    row(f"latency {part} {q[:3]} (s)", {"ours": _fmt(lat[part][q])}, "", lat_goal)
    for dist, why in NOT_INSTALLABLE.items():
        lines.append(f"{dist}: {why}")
    return lines


# --- the figure ----------------------------------------------------------------------------------------------


def plot(path: Path, result: dict[str, Any], names: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(18, 10))
    grid = fig.add_gridspec(2, 3)
    petshop_ax = fig.add_subplot(grid[0, :])
    circa_ax, sim_ax, lat_ax = (fig.add_subplot(grid[1, i]) for i in range(3))
    for ax in (petshop_ax, circa_ax, sim_ax, lat_ax):
        ax.set_axis_off()
    colours = {"ours": "tab:blue", "baro": "tab:orange", "circa": "tab:green", "random": "tab:grey"}

    def bars(ax: Any, groups: list[str], per_method: dict[str, list[float]], title: str, goal: float | None) -> None:
        ax.set_axis_on()
        width = 0.8 / max(1, len(per_method))
        for j, (name, values) in enumerate(per_method.items()):
            xs = [i + (j - (len(per_method) - 1) / 2) * width for i in range(len(groups))]
            ax.bar(xs, values, width=width, label=name, color=colours.get(name))
        ax.set_xticks(range(len(groups)), groups, fontsize=8)
        if goal is not None:
            ax.axhline(goal, color="red", linestyle=":", linewidth=1)
        ax.set_ylim(0, 1.05)
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)

    def ok(suite: dict[str, Any]) -> dict[str, Any]:
        return {n: m for n, m in suite["methods"].items() if "error" not in m and n in names}

    if "circa_sim" in result:
        suite = result["circa_sim"]
        sizes = [str(s) for s in suite["shape"]["sizes"]]
        groups = [f"{s} nodes {k}" for s in sizes for k in ("AC@1", "Avg@5")]
        per = {n: [m[s][k] for s in sizes for k in ("ac1", "avg5")] for n, m in ok(suite).items()}
        bars(circa_ax, groups, per, "CIRCA's simulator (goal, 50 nodes: Avg@5 >= 0.95, AC@1 >= 0.85)", 0.95)
    if "petshop" in result:
        suite = result["petshop"]
        keys = [(g, t, k) for g in petshop.GROUPS for t in petshop.ISSUE_TYPES for k in ("top1", "top3")]
        spec_keys = [(g, t) for g in ("low", "high") for t in petshop.ISSUE_TYPES]
        groups = [f"{g}\n{t[:5]}\n{k}" for g, t, k in keys] + [f"{g}\n{t[:5]}\nspecificity" for g, t in spec_keys]
        per = {
            n: [m["recall"][g][t][k] for g, t, k in keys] + [m["specificity"][g][t] for g, t in spec_keys]
            for n, m in ok(suite).items()
        }
        per["graph traversal (published)"] = [petshop.PUBLISHED["recall"][g][t][k] for g, t, k in keys] + [
            math.nan for _ in spec_keys
        ]
        colours["graph traversal (published)"] = "tab:purple"
        bars(petshop_ax, groups, per, "PetShop top-k recall (train + test) and specificity (goal 0.80)", 0.8)
    if "simulator" in result:
        suite = result["simulator"]
        groups = ["AC@1", "AC@3", "Avg@5"]
        per = {n: [m["ac1"], m["ac3"], m["avg5"]] for n, m in ok(suite).items()}
        bars(sim_ax, groups, per, f"Own simulator, {suite['shape']['cases']} cases (goal AC@1 >= 0.90)", 0.9)
    ax = lat_ax
    lat = result.get("latency", {})
    if "total" in lat:
        ax.set_axis_on()
        parts = ["gather", "analyze", "total"]
        ax.bar([i - 0.2 for i in range(3)], [lat[p]["p50_s"] for p in parts], width=0.4, label="p50")
        ax.bar([i + 0.2 for i in range(3)], [lat[p]["p95_s"] for p in parts], width=0.4, label="p95")
        ax.axhline(2.0, color="red", linestyle=":", linewidth=1, label="goal 2 s")
        ax.set_xticks(range(3), parts)
        ax.set_ylabel("seconds")
        ax.set_title(f"Incident -> RCA result, {lat['services']} services, a day of history", fontsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("numpy", "pandas", "scipy", "statsmodels", "scikit-learn", "networkx"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    out |= peer_versions()
    try:
        out["aiops"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        # The figures are the engine's as it is on disk: say so when that is not the commit.
        engine = ["services/rca", "libs/common"]
        changed = subprocess.run(["git", "status", "--porcelain", "--", *engine], capture_output=True, text=True)
        if changed.stdout.strip():
            out["aiops"] += " with uncommitted changes under " + " or ".join(engine)
    except (OSError, subprocess.CalledProcessError):
        out["aiops"] = "unknown"
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer cases and runs (a few minutes)")
    parser.add_argument("--methods", default="ours,baro,circa,random", help="comma-separated")
    parser.add_argument("--suites", default="circa,petshop,simulator,latency", help="comma-separated")
    parser.add_argument("--petshop", type=Path, default=petshop.DEFAULT_DATASET, help="the PetShop dataset folder")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.methods.split(",") if n.strip()]
    suites = {s.strip() for s in args.suites.split(",") if s.strip()}
    methods = _methods(names)
    circa_shape = circa_sim.SimShape(graphs=3, cases_per_graph=10) if args.quick else circa_sim.SimShape()
    sim_shape = simulator.SimShape(cases=60) if args.quick else simulator.SimShape()
    result: dict[str, Any] = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "versions": _versions(),
        "methods": names,
        "not_installable": NOT_INSTALLABLE,
        "runtime_s": {},
    }
    started = time.perf_counter()
    if "circa" in suites:
        t = time.perf_counter()
        result["circa_sim"] = run_circa(methods, circa_shape)
        result["runtime_s"]["circa_sim"] = time.perf_counter() - t
    if "petshop" in suites:
        t = time.perf_counter()
        result["petshop"] = run_petshop(methods, args.petshop.resolve())
        result["runtime_s"]["petshop"] = time.perf_counter() - t
    if "simulator" in suites:
        t = time.perf_counter()
        result["simulator"] = run_simulator(methods, sim_shape)
        result["runtime_s"]["simulator"] = time.perf_counter() - t
    if "latency" in suites:
        t = time.perf_counter()
        result["latency"] = run_latency(5 if args.quick else 10)
        result["runtime_s"]["latency"] = time.perf_counter() - t
    result["runtime_s"]["total"] = time.perf_counter() - started
    result["seeds"] = {
        "circa_sim": circa_shape.seed,
        "simulator": sim_shape.seed,
        "latency": 7,
        "random_ranking": 0,
    }
    print()
    for line in table(result, names):
        print(line)
    for suite in ("circa_sim", "petshop", "simulator", "latency"):
        goals = result.get(suite, {}).get("goals")
        if goals:
            print(f"goals {suite}: " + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in goals.items()))
    print(f"runtime: {result['runtime_s']['total']:.0f} s")
    args.output.mkdir(parents=True, exist_ok=True)
    plot(args.output / "rca.png", result, names)
    (args.output / "rca.json").write_text(json.dumps(result, indent=2, default=_json_default) + "\n")
    print(f"wrote {args.output / 'rca.json'} and {args.output / 'rca.png'}")
    return 0


def _json_default(obj: Any) -> Any:
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f"not JSON: {type(obj).__name__}")


if __name__ == "__main__":
    sys.exit(main())
