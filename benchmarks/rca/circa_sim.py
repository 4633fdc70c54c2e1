"""CIRCA's own simulator (``circa-clue``): random DAGs with the SLI as sink, AC@1, AC@3, Avg@5 per graph size.

Run ``python -m benchmarks.rca.circa_sim`` for the engine's figures alone (``--method`` picks another).

Cases come from ``circa.experiment.simulation.generate`` with its defaults, as the CIRCA paper (Li et al.,
KDD 2022) and Pham et al. (ASE 2024) use them: a random weighted DAG whose node 0 (the SLI) is the only
sink, a linear VAR over it, 1440 normal points on a one-minute grid, a fault on 1 + Poisson(1) random
roots for 2 points, 10 abnormal points in all, data standardised on the normal part. Graphs have
twice as many edges as nodes (CIRCA's experiments use 50 nodes with 100 edges). Several graphs per
size, several cases per graph, one seed.

Each case becomes an engine :class:`~aiops_rca.case.Case`: one series ``SeriesKey(node, "value")`` per
node; the DAG's edge parent -> child (parent causes child) becomes the call edge ``(child, parent)``,
since a callee's fault shows in its callers; the normal period ends at the 1440th point; the target is
the SLI; no onset is given.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from aiops_rca.case import Case, SeriesKey

from benchmarks.rca.methods import Method, ours, random_ranking, robust_z, split_ms
from benchmarks.rca.scoring import summarize

__all__ = ["SimCase", "SimShape", "circa", "evaluate", "generate"]

BASE_MS = 1_767_225_600_000
"""2026-01-01T00:00Z: where the simulated minutes start."""
STEP_MS = 60_000
SLI = "0"


@dataclass(frozen=True, slots=True)
class SimShape:
    sizes: tuple[int, ...] = (10, 50)
    graphs: int = 10
    """Graphs per size (the CIRCA paper uses 10 per size)."""
    cases_per_graph: int = 10
    seed: int = 519
    """CIRCA's default seed."""


@dataclass(frozen=True, slots=True)
class SimCase:
    case: Case
    roots: frozenset[str]
    size: int


@lru_cache(maxsize=4)
def generate(shape: SimShape) -> tuple[SimCase, ...]:
    """Every case of every size, generated once per shape (the methods then run on the same cases)."""
    from circa.experiment.simulation import generate as circa_generate

    rng = np.random.default_rng(shape.seed)
    out: list[SimCase] = []
    for size in shape.sizes:
        for _ in range(shape.graphs):
            dataset = circa_generate(num_node=size, num_edge=2 * size, num_cases=shape.cases_per_graph, rng=rng)
            graph = dataset.graph_factory.create(data=None, current=0.0)
            # Call edges: the effect (caller) calls the cause (callee).
            edges = sorted((child.metric, node.metric) for node in graph.nodes for child in graph.children(node))
            for sim in dataset.cases:
                out.append(SimCase(_to_case(sim, edges, size), frozenset(n.metric for n in sim.answer), size))
    return tuple(out)


def _to_case(sim: Any, edges: list[tuple[str, str]], size: int) -> Case:
    # CIRCA keeps the generated matrix private; its public view is a data loader of (seconds, value) pairs.
    data: np.ndarray[Any, np.dtype[np.float64]] = np.asarray(sim._time_series, dtype=np.float64)
    normal: int = sim._length_normal
    ts = BASE_MS + STEP_MS * np.arange(data.shape[0], dtype=np.int64)
    names = [str(i) for i in range(size)]
    return Case(
        ts_ms=ts,
        series={SeriesKey(name, "value"): data[:, i].copy() for i, name in enumerate(names)},
        edges=list(edges),
        services=names,
        incident_services=[SLI],
        target=SeriesKey(SLI, "value"),
        baseline_end_ms=int(ts[normal - 1]),
    )


def circa(case: Case) -> list[str]:
    """CIRCA (regression-based hypothesis testing + descendant adjustment, as its RHT-DA model) given the
    true graph from the case's edges, with the case-data settings of its simulation experiments: a
    two-hour lookup window, 10 test points, analysed 5 minutes after detection."""
    import datetime

    import networkx as nx
    from circa.alg.ci import DAScorer, RHTScorer
    from circa.alg.common import Model
    from circa.graph.common import StaticGraphFactory
    from circa.model.case import CaseData
    from circa.model.graph import MemoryGraph, Node

    entity = "SIM"
    seconds = (case.ts_ms - case.ts_ms[0]) / 1000.0
    data = {entity: {k.service: list(zip(seconds.tolist(), v.tolist(), strict=True)) for k, v in case.series.items()}}
    if len(data[entity]) != len(case.series):
        raise ValueError("CIRCA here takes one series per service")
    graph = nx.DiGraph()
    graph.add_nodes_from(Node(entity, s) for s in data[entity])
    graph.add_edges_from((Node(entity, callee), Node(entity, caller)) for caller, callee in case.edges)
    interval = float(np.median(np.diff(seconds)))
    if case.target is None:
        raise ValueError("CIRCA needs the SLI")
    detect_s = (split_ms(case) - int(case.ts_ms[0])) / 1000.0
    case_data = CaseData(
        data_loader=_loader_class()(data=data),
        sli=Node(entity, case.target.service),
        detect_time=detect_s,
        interval=datetime.timedelta(seconds=interval),
        lookup_window=120,
    )
    model = Model(graph_factory=StaticGraphFactory(MemoryGraph(graph)), scorers=[RHTScorer(), DAScorer(threshold=3)])
    return [node.metric for node, _ in model.analyze(data=case_data, current=detect_s + 300)]


@lru_cache(maxsize=1)
def _loader_class() -> Any:
    """CIRCA's in-memory loader with its resampling step written for pandas >= 2 (it calls
    ``fillna(method="bfill")``, which pandas 3 removed); the steps are otherwise CIRCA's own."""
    import pandas as pd
    from circa.model.data_loader import MemoryDataLoader

    class Loader(MemoryDataLoader):  # type: ignore[misc]
        def preprocess(
            self, time_series: Sequence[tuple[float, float]], start: float, end: float, interval: Any, **kwargs: Any
        ) -> tuple[float, ...] | None:
            if not time_series:
                return None
            data = np.array(time_series)
            data = data[(data[:, 0] >= start) & (data[:, 0] <= end), :]
            if len(data) == 0:
                return None
            data = np.vstack([data, np.array([(start, np.nan), (end, np.nan)])])
            frame = pd.DataFrame(data)
            frame[0] = pd.to_datetime(frame[0], unit=kwargs.get("unit", "s"), utc=True)
            frame = frame.set_index(0).resample(interval, origin="start").mean()
            frame = frame.interpolate(method="time", limit_direction="both").bfill().sort_index()
            return tuple(frame[1])

    return Loader


def evaluate(method: Method, shape: SimShape | None = None) -> dict[str, Any]:
    """AC@1..5, Avg@5 and seconds per case, per graph size (keys ``"10"``, ``"50"``)."""
    cases = generate(shape or SimShape())
    out: dict[str, Any] = {}
    for size in sorted({c.size for c in cases}):
        mine = [c for c in cases if c.size == size]
        started = time.perf_counter()
        rankings = [method(c.case) for c in mine]
        elapsed = time.perf_counter() - started
        figures = summarize(rankings, [c.roots for c in mine])
        figures["seconds_per_case"] = elapsed / len(mine)
        out[str(size)] = figures
    return out


METHODS: dict[str, Method] = {
    "ours": ours,
    "baro": lambda case: _baro(case),
    "circa": circa,
    "random": random_ranking(0),
    "robust-z": robust_z(),
}


def _baro(case: Case) -> list[str]:
    from benchmarks.rca.methods import baro

    return baro(case)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", choices=sorted(METHODS), default="ours")
    parser.add_argument("--graphs", type=int, default=SimShape().graphs, help="graphs per size")
    parser.add_argument("--cases", type=int, default=SimShape().cases_per_graph, help="cases per graph")
    parser.add_argument("--seed", type=int, default=SimShape().seed)
    args = parser.parse_args(argv)
    shape = SimShape(graphs=args.graphs, cases_per_graph=args.cases, seed=args.seed)
    result = evaluate(METHODS[args.method], shape)
    print(f"{args.method} on CIRCA's simulator, {shape.graphs} graphs x {shape.cases_per_graph} cases per size")
    print(f"{'nodes':>5s} {'AC@1':>6s} {'AC@3':>6s} {'Avg@5':>6s} {'s/case':>7s}")
    for size, f in result.items():
        print(f"{size:>5s} {f['ac1']:6.3f} {f['ac3']:6.3f} {f['avg5']:6.3f} {f['seconds_per_case']:7.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
