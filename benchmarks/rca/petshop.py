"""PetShop (Hardt et al., arXiv 2311.04806) with its own evaluation protocol: top-1/top-3 recall and specificity.

Run ``python -m benchmarks.rca.petshop [--dataset PATH]`` for the engine's figures alone.

The protocol is ``code/rca_task.py`` of amazon-science/petshop-root-cause-analysis: for each issue of a
scenario (train and test, as ``evaluate`` does), the method gets the call graph, the target node, metric
and statistic, the scenario's no-issue metrics as normal data and the issue's metrics as abnormal data;
a hit at k is the true root-cause node among the first k (the root-cause metric is null in every
issue, so only the node counts). Figures are grouped as ``run_experiments.py`` groups them: scenario
(low, high, temporal = temporal_traffic1 + 2) by the target metric (latency, availability).
Specificity is ``evaluate_specificity``: for every target of a scenario, the no-issue data is split at
50%, 60%, ... of its length (step 10%, last split at least 3 points from the end); the part after the
split is the "abnormal" data, and the right answer is an empty ranking.

Each issue becomes an engine :class:`~aiops_rca.case.Case`: one series per column,
``SeriesKey(node, f"{metric}:{statistic}")``; call edges from ``graph.csv`` (the row node calls the
column node); the target ``SeriesKey(node, f"{metric}:{agg}")``; the normal data ends at
``baseline_end_ms``; no onset. The no-issue periods were recorded months after the issues (August vs
April 2023), so the normal rows are put on the issue's 5-minute grid ending one step before its first
row (their order and spacing are kept); a case's grid must ascend.

The temporal scenarios have no ``noissue/`` folder, and ``load_scenario`` reads
``noissue/metrics.csv`` unconditionally, so upstream's ``evaluate`` and ``evaluate_specificity`` stop
with FileNotFoundError on them. Here their normal data is the low- and high-traffic scenarios' no-issue
data, one after the other (the temporal scenarios move between those traffic levels), and their
specificity is not reported: there is no normal period of theirs to split.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from aiops_rca.case import Case, SeriesKey

from benchmarks.rca.methods import Method, baro, ours, random_ranking, robust_z

__all__ = ["PUBLISHED", "Issue", "evaluate", "issue_cases", "specificity_cases"]

DEFAULT_DATASET = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "petshop" / "dataset"
SCENARIOS = ("low_traffic", "high_traffic", "temporal_traffic1", "temporal_traffic2")
GROUPS = ("low", "high", "temporal")
ISSUE_TYPES = ("latency", "availability")
STEP_S = 300

PUBLISHED: dict[str, Any] = {
    "name": "graph traversal (the dataset's baseline, test issues, Hardt et al.)",
    "recall": {
        "low": {"latency": {"top1": 0.571, "top3": 0.571}, "availability": {"top1": 0.833, "top3": 1.0}},
        "high": {"latency": {"top1": 0.571, "top3": 0.786}, "availability": {"top1": 0.667, "top3": 1.0}},
        "temporal": {"latency": {"top1": 1.0, "top3": 1.0}, "availability": {"top1": 0.75, "top3": 1.0}},
    },
    "specificity": {"latency": "0.17-0.60"},
}
"""The published best on PetShop, printed beside ours."""


@dataclass(frozen=True, slots=True)
class Issue:
    scenario: str
    split: str
    name: str
    issue_type: str
    """The target metric: latency or availability."""
    root: str
    case: Case

    @property
    def group(self) -> str:
        return _group(self.scenario)


def _group(scenario: str) -> str:
    return scenario.split("_", 1)[0]


def _read_metrics(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, header=[0, 1, 2], index_col=0)
    frame.index = frame.index.astype(float).astype(np.int64)
    return frame.sort_index()


@lru_cache(maxsize=8)
def _scenario(dataset: Path, scenario: str) -> tuple[list[tuple[str, str]], pd.DataFrame | None, list[Any]]:
    """Call edges, no-issue metrics (None when the scenario has none), issues (split, name, metrics, target)."""
    root = dataset / scenario
    adjacency = pd.read_csv(root / "graph.csv", index_col=0)
    edges = [
        (str(caller), str(callee))
        for caller in adjacency.index
        for callee in adjacency.columns
        if adjacency.at[caller, callee] != 0 and caller != callee
    ]
    normal_path = root / "noissue" / "metrics.csv"
    normal = _read_metrics(normal_path) if normal_path.exists() else None
    issues: list[Any] = []
    for split in ("train", "test"):
        for folder in sorted((root / split).iterdir(), key=lambda p: (len(p.name), p.name)):
            if folder.name.startswith("."):
                continue
            target = json.loads((folder / "target.json").read_text())
            issues.append((split, folder.name, _read_metrics(folder / "metrics.csv"), target))
    return edges, normal, issues


def _normal_for(dataset: Path, scenario: str) -> pd.DataFrame:
    _, normal, _ = _scenario(dataset, scenario)
    if normal is not None:
        return normal
    parts = [_scenario(dataset, s)[1] for s in ("low_traffic", "high_traffic")]
    return pd.concat([p for p in parts if p is not None], axis=0, ignore_index=True)


def build_case(
    edges: list[tuple[str, str]], normal: pd.DataFrame, abnormal: pd.DataFrame, target: tuple[str, str, str]
) -> Case:
    """One case: the normal rows on the grid just before the abnormal rows, every column a series."""
    columns = list(dict.fromkeys([*normal.columns, *abnormal.columns]))
    first = int(abnormal.index[0])
    normal_ts = first - STEP_S * np.arange(len(normal), 0, -1, dtype=np.int64)
    if int(normal.index[-1]) < first:
        # Recorded just before the abnormal rows already (a split of one period): keep its own times.
        normal_ts = normal.index.to_numpy(dtype=np.int64)
    ts = np.concatenate([normal_ts, abnormal.index.to_numpy(dtype=np.int64)])
    low = normal.reindex(columns=columns).to_numpy(dtype=np.float64)
    high = abnormal.reindex(columns=columns).to_numpy(dtype=np.float64)
    values = np.vstack([low, high])
    series = {
        SeriesKey(str(node), f"{metric}:{statistic}"): values[:, i].copy()
        for i, (node, metric, statistic) in enumerate(columns)
    }
    nodes = list(dict.fromkeys([n for e in edges for n in e]))
    node, metric, agg = target
    return Case(
        ts_ms=ts * 1000,
        series=series,
        edges=list(edges),
        services=[node, *[n for n in nodes if n != node]],
        incident_services=[node],
        target=SeriesKey(node, f"{metric}:{agg}"),
        baseline_end_ms=int(normal_ts[-1]) * 1000,
    )


@lru_cache(maxsize=2)
def issue_cases(dataset: Path = DEFAULT_DATASET) -> tuple[Issue, ...]:
    out: list[Issue] = []
    for scenario in SCENARIOS:
        edges, _, issues = _scenario(dataset, scenario)
        normal = _normal_for(dataset, scenario)
        for split, name, metrics, target in issues:
            t = target["target"]
            case = build_case(edges, normal, metrics, (t["node"], t["metric"], t["agg"]))
            out.append(Issue(scenario, split, name, t["metric"], target["root_cause"]["node"], case))
    return tuple(out)


@lru_cache(maxsize=2)
def specificity_cases(dataset: Path = DEFAULT_DATASET) -> tuple[tuple[str, str, int, Case], ...]:
    """(scenario, target metric, split row, case) for every split of ``evaluate_specificity``; scenarios
    without no-issue data have none."""
    out: list[tuple[str, str, int, Case]] = []
    for scenario in SCENARIOS:
        edges, normal, issues = _scenario(dataset, scenario)
        if normal is None:
            continue
        targets = sorted({(t["target"]["node"], t["target"]["metric"], t["target"]["agg"]) for *_, t in issues})
        n = len(normal.index)
        for target in targets:
            for split in range(int(n / 2), n - 3, int(n * 0.1)):
                case = build_case(edges, normal.iloc[:split], normal.iloc[split:], target)
                out.append((scenario, target[1], split, case))
    return tuple(out)


def evaluate(method: Method, dataset: Path = DEFAULT_DATASET, specificity: bool = True) -> dict[str, Any]:
    """Top-1/top-3 recall per scenario group and issue type (train + test, and test alone), specificity
    per scenario group and target metric, and each issue's outcome."""
    issues = issue_cases(dataset)
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    for issue in issues:
        ranking = method(issue.case)
        rows.append(
            {
                "scenario": issue.scenario,
                "group": issue.group,
                "split": issue.split,
                "issue": issue.name,
                "type": issue.issue_type,
                "root": issue.root,
                "top3": ranking[:3],
                "hit1": issue.root in ranking[:1],
                "hit3": issue.root in ranking[:3],
                "empty": not ranking,
            }
        )
    recall_s = time.perf_counter() - started
    recall: dict[str, Any] = {}
    recall_test: dict[str, Any] = {}
    for group in GROUPS:
        recall[group], recall_test[group] = {}, {}
        for kind in ISSUE_TYPES:
            mine = [r for r in rows if r["group"] == group and r["type"] == kind]
            recall[group][kind] = _recall(mine)
            recall_test[group][kind] = _recall([r for r in mine if r["split"] == "test"])
    out: dict[str, Any] = {
        "recall": recall,
        "recall_test": recall_test,
        "issues": rows,
        "seconds_per_issue": recall_s / len(rows),
    }
    if specificity:
        spec: dict[str, Any] = {g: dict.fromkeys(ISSUE_TYPES) for g in GROUPS}
        correct: dict[tuple[str, str, str], list[bool]] = {}
        for scenario, kind, _, case in specificity_cases(dataset):
            correct.setdefault((_group(scenario), scenario, kind), []).append(not method(case))
        for group in GROUPS:
            for kind in ISSUE_TYPES:
                # run_experiments.py: the mean over targets of each target's share of empty answers.
                per_target = [float(np.mean(v)) for (g, _, k), v in correct.items() if g == group and k == kind]
                spec[group][kind] = float(np.mean(per_target)) if per_target else None
        out["specificity"] = spec
    return out


def _recall(rows: list[dict[str, Any]]) -> dict[str, Any]:
    if not rows:
        return {"top1": None, "top3": None, "n": 0, "empty": 0}
    return {
        "top1": sum(r["hit1"] for r in rows) / len(rows),
        "top3": sum(r["hit3"] for r in rows) / len(rows),
        "n": len(rows),
        "empty": sum(r["empty"] for r in rows),
    }


METHODS: dict[str, Method] = {"ours": ours, "baro": baro, "random": random_ranking(0), "robust-z": robust_z()}


def print_table(name: str, result: dict[str, Any]) -> None:
    spec = result.get("specificity", {})
    print(f"{name}: PetShop, train + test issues (test alone in brackets)")
    print(f"{'scenario':9s} {'type':12s} {'n':>3s} {'top-1':>12s} {'top-3':>12s} {'specificity':>11s}")
    for group in GROUPS:
        for kind in ISSUE_TYPES:
            r, t = result["recall"][group][kind], result["recall_test"][group][kind]
            s = spec.get(group, {}).get(kind)
            print(
                f"{group:9s} {kind:12s} {r['n']:3d} {_f(r['top1'])} ({_f(t['top1'])}) "
                f"{_f(r['top3'])} ({_f(t['top3'])}) {'n/a' if s is None else f'{s:.2f}':>11s}"
            )


def _f(x: float | None) -> str:
    return " n/a" if x is None else f"{x:.2f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", choices=sorted(METHODS), default="ours")
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET, help="the PetShop dataset folder")
    parser.add_argument("--no-specificity", action="store_true")
    parser.add_argument("--issues", action="store_true", help="print every issue's outcome")
    args = parser.parse_args(argv)
    result = evaluate(METHODS[args.method], args.dataset.resolve(), specificity=not args.no_specificity)
    if args.issues:
        for r in result["issues"]:
            mark = "hit1" if r["hit1"] else "hit3" if r["hit3"] else "miss"
            print(
                f"{r['scenario']:18s} {r['split']:5s} {r['issue']:9s} {r['type']:12s} {mark} {r['root']} <- {r['top3']}"
            )
    print_table(args.method, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
