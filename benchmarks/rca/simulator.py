"""Our simulator of microservice faults with the platform's own signals: RED series, resources, deployments, traces.

Run ``python -m benchmarks.rca.simulator`` for the engine's figures alone (``--method`` picks another).

Each case is a random call DAG of 10-50 services under one entry service, on the 10 s grid the stream
layer writes (``red.request_rate:value_10s``, ``red.error_rate:value_10s``, ``red.latency_s:value_10s``,
``red.latency_s:p95_10s``, ``process.cpu.utilization:value_10s`` in 0..1,
``process.memory.usage:value_10s``, ``k8s.container.restarts:value_10s``), three hours of normal
operation and ten minutes after the fault's onset. Traffic enters at the entry with a diurnal swing and
flows down the calls (each edge with its own calls per request); a service's latency is its own time
plus its calls' latencies times their number, so a caller amplifies its callee's slowdown and, being
quieter, can move by more standard deviations than the root; errors flow up the calls (a caller fails
with the callee it needed, or retries it away); CPU follows the requests served.

Faults, one per case on a random service: latency injection, error injection, CPU saturation
(utilisation near 1, queueing latency), crash loop (restarts climb, served traffic drops, the refused
requests fail in the callers' client spans) and bad deployment (a deployment on the root 30 s to 10 min
before onset, then errors and/or latency). What makes it hard, drawn per case and never looking at any
method: noisy roots (own latency and errors with a high baseline variance), a root missing one of its
signals (its latency, errors, traffic or resources were never collected), callers that time out on a
slow callee (their own errors, their own first failing spans), decoy traffic shifts on unrelated
services near onset (their rate, CPU and latency move, as do their callees'), decoy deployments on
healthy services in the half hour before onset, managed datastores with no resource series at all,
scrape gaps, and trace evidence missing in a third of the cases.

The case is what the agent would gather: the whole graph as the affected subgraph, every series, the
deployments, the alerts (a series beyond 8 robust deviations for three points in a row, the incident's
onset is the first of them; the incident's services are the alerted ones), the first failing spans
of sampled error traces after onset, and the incident's target (the entry's latency or errors when
they alerted).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
from aiops_rca.case import Case, CaseChange, CaseSignal, SeriesKey, TraceOrigin

from benchmarks.rca.methods import Method, baro, ours, random_ranking, robust_z
from benchmarks.rca.scoring import summarize

__all__ = ["FAULTS", "Fault", "Scenario", "SimShape", "evaluate", "generate", "simulate", "topology"]

STEP_MS = 10_000
BASE_MS = 1_767_261_600_000
"""2026-01-01T10:00Z: where the first case's normal period starts."""
FAULTS = ("latency", "errors", "cpu", "crash_loop", "deployment")

RATE = "red.request_rate:value_10s"
ERRORS = "red.error_rate:value_10s"
LATENCY = "red.latency_s:value_10s"
P95 = "red.latency_s:p95_10s"
CPU = "process.cpu.utilization:value_10s"
MEMORY = "process.memory.usage:value_10s"
RESTARTS = "k8s.container.restarts:value_10s"
SIGNALS: dict[str, tuple[str, ...]] = {
    "latency": (LATENCY, P95),
    "errors": (ERRORS,),
    "traffic": (RATE,),
    "resources": (CPU, MEMORY, RESTARTS),
}
"""The signal families a root may be missing."""

Array = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class SimShape:
    cases: int = 200
    seed: int = 20261206
    normal_s: int = 3 * 3600
    after_s: int = 600
    services: tuple[int, int] = (10, 50)


@dataclass(slots=True)
class Fault:
    root: str
    kind: str
    onset_ms: int
    noisy_root: bool = False
    missing: str = ""
    """The root's signal family that was never collected (empty: none)."""
    timeouts: list[str] = field(default_factory=list)
    traces: bool = True
    decoy_traffic: list[str] = field(default_factory=list)
    decoy_deployments: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Scenario:
    case: Case
    fault: Fault
    size: int


@lru_cache(maxsize=2)
def generate(shape: SimShape) -> tuple[Scenario, ...]:
    return tuple(simulate(np.random.default_rng([shape.seed, i]), shape, i) for i in range(shape.cases))


def topology(rng: np.random.Generator, n: int) -> tuple[list[str], dict[tuple[int, int], float]]:
    """Service names and call edges (caller, callee) -> calls per request; service 0 is the entry, every
    service is reached from it, and callees have higher indexes (a DAG)."""
    kinds = ["api", "svc", "worker", "auth", "cart", "pay", "search", "catalog", "ship", "user", "notify", "price"]
    names = ["frontend"] + [f"{kinds[int(rng.integers(len(kinds)))]}-{i:02d}" for i in range(1, n)]
    edges: dict[tuple[int, int], float] = {}
    for callee in range(1, n):
        # Callers come mostly from the few services just above, so the graph has depth, not a star.
        low = max(0, callee - int(rng.integers(2, 8)))
        for caller in set(rng.integers(low, callee, size=1 + int(rng.random() < 0.35)).tolist()):
            edges[(caller, callee)] = float(rng.choice([0.5, 1.0, 1.0, 1.0, 2.0, 3.0]) * rng.uniform(0.7, 1.3))
    return names, edges


def simulate(rng: np.random.Generator, shape: SimShape, index: int = 0) -> Scenario:
    """One case: topology, fault and decoys drawn from ``rng``, series computed, alerts derived."""
    n = int(rng.integers(shape.services[0], shape.services[1] + 1))
    names, edges = topology(rng, n)
    callees: list[list[tuple[int, float]]] = [[] for _ in range(n)]
    callers: list[list[tuple[int, float]]] = [[] for _ in range(n)]
    for (a, b), w in edges.items():
        callees[a].append((b, w))
        callers[b].append((a, w))
    steps_normal = shape.normal_s * 1000 // STEP_MS
    steps = steps_normal + shape.after_s * 1000 // STEP_MS
    start_ms = BASE_MS + index * 86_400_000
    ts = start_ms + STEP_MS * np.arange(steps, dtype=np.int64)
    onset = steps_normal + int(rng.integers(0, 3))
    onset_ms = int(ts[onset])
    after = np.arange(steps) >= onset
    hours = (ts - ts[0]) / 3_600_000.0

    root = int(rng.integers(0, n))
    kind = str(rng.choice(FAULTS))
    fault = Fault(root=names[root], kind=kind, onset_ms=onset_ms)
    leaf_store = [not callees[i] and i != 0 and rng.random() < 0.5 for i in range(n)]

    # Per-service character: own latency, error level, noise, CPU per request.
    own_latency = rng.lognormal(np.log(0.015), 0.7, n)
    own_error = rng.uniform(0.0005, 0.01, n)
    noise = rng.uniform(0.04, 0.15, n)
    if rng.random() < 0.4:
        fault.noisy_root = True
        noise[root] = rng.uniform(0.25, 0.45)
        own_error[root] = rng.uniform(0.01, 0.04)
    p95_factor = rng.uniform(1.6, 3.2, n)
    cpu_base = rng.uniform(0.08, 0.45, n)
    memory_base = rng.uniform(1.5e8, 9e8, n)

    # Traffic: the entry's diurnal swing, then down the calls in index (topological) order.
    entry = rng.uniform(40, 600) * (1 + 0.3 * np.sin(2 * np.pi * (hours / 24 + rng.random())))
    rate_in = np.zeros((n, steps))
    rate_in[0] = entry * (1 + 0.03 * rng.standard_normal(steps))
    traffic_factor = np.ones((n, steps))
    decoys = [i for i in range(n) if i != root]
    for d in rng.choice(decoys, size=min(len(decoys), int(rng.integers(0, 3))), replace=False).tolist():
        fault.decoy_traffic.append(names[d])
        at = onset + int(rng.integers(-30, 20))
        traffic_factor[d, at:] *= rng.choice([rng.uniform(1.6, 3.0), rng.uniform(0.3, 0.6)])
    served = np.ones((n, steps))
    """Share of a service's requests it serves (a crash loop turns some away)."""

    own_lat = np.tile(own_latency[:, None], (1, steps))
    own_err = np.tile(own_error[:, None], (1, steps))
    cpu_extra = np.zeros((n, steps))
    restarts = np.tile(rng.integers(0, 4, n).astype(np.float64)[:, None], (1, steps))
    changes: list[CaseChange] = []

    ramp = np.clip((np.arange(steps) - onset + 1) / rng.integers(1, 4), 0.0, 1.0)
    effect = kind
    if kind == "deployment":
        deployed = onset_ms - int(rng.integers(3, 61)) * STEP_MS
        changes.append(
            CaseChange(deployed, names[root], f"v{rng.integers(2, 40)}.{rng.integers(0, 20)}", id="chg-root")
        )
        effect = str(rng.choice(["latency", "errors", "both"]))
    if effect in ("latency", "both"):
        own_lat[root] *= 1 + ramp * rng.uniform(1.5, 7.0)
    if effect in ("errors", "both"):
        own_err[root] += ramp * rng.uniform(0.03, 0.35)
    if kind == "cpu":
        cpu_extra[root] = ramp  # utilisation pinned near 1 below
        own_lat[root] *= 1 + ramp * rng.uniform(1.0, 4.0)
        own_err[root] += ramp * rng.uniform(0.0, 0.02)
    if kind == "crash_loop":
        every = int(rng.integers(3, 12))
        bumps = np.zeros(steps)
        bumps[onset::every] = 1.0
        restarts[root] += np.cumsum(bumps)
        down = (np.arange(steps) - onset) % every < max(1, every // 3)
        turned_away = np.where(after & down, rng.uniform(0.3, 0.8), 0.0)
        served[root] = 1 - turned_away
        # Requests refused while it restarts never reach its server spans: they fail in the callers' client
        # spans (their errors, their first failing spans); the root itself only errs while starting up.
        own_err[root] += after * rng.uniform(0.01, 0.08)
        for caller, w in callers[root]:
            own_err[caller] += turned_away * min(1.0, w) * rng.uniform(0.6, 1.0)
    if kind in ("latency", "cpu") or effect in ("latency", "both"):
        for caller, _ in callers[root]:
            if rng.random() < 0.3:
                fault.timeouts.append(names[caller])
                own_err[caller] += ramp * rng.uniform(0.01, 0.15)

    # Requests flow down: a callee gets its callers' served requests times the calls per request.
    for i in range(n):
        if i:
            rate_in[i] = sum((rate_in[c] * served[c] * w for c, w in callers[i]), np.zeros(steps))
            rate_in[i] *= 1 + 0.02 * rng.standard_normal(steps)
        rate_in[i] *= traffic_factor[i]
    rate = rate_in * served

    # Latency and errors flow up: callees first.
    # A service's 10 s mean is measured over its own requests: its noise (``noise``) is its own, while its
    # callers wait on the callee's typical time, so a quiet caller of a noisy root moves more clearly.
    true_latency = np.zeros((n, steps))
    error = np.zeros((n, steps))
    for i in reversed(range(n)):
        load = rate_in[i] / np.median(rate_in[i, :steps_normal])
        own = own_lat[i] * (1 + 0.15 * np.clip(load - 1, 0, None)) * rng.lognormal(0, 0.03, steps)
        true_latency[i] = own + sum((true_latency[c] * w for c, w in callees[i]), np.zeros(steps))
        ok = 1 - np.clip(own_err[i] * rng.lognormal(0, noise[i], steps), 0, 1)
        for c, w in callees[i]:
            ok *= 1 - np.clip(error[c] * min(1.0, w) * rng.uniform(0.5, 1.0), 0, 1)
        error[i] = 1 - ok
    latency = true_latency * rng.lognormal(0, noise[:, None], (n, steps))
    requests = np.maximum(rate * 10, 1)
    observed_error = rng.binomial(requests.astype(np.int64), np.clip(error, 0, 1)) / requests
    p95 = latency * p95_factor[:, None] * rng.lognormal(0, 0.08, (n, steps))
    load = rate / np.median(rate[:, :steps_normal], axis=1, keepdims=True)
    cpu = cpu_base[:, None] * load * (1 + 0.06 * rng.standard_normal((n, steps)))
    cpu = np.where(cpu_extra > 0, np.maximum(cpu, cpu_extra * rng.uniform(0.96, 1.0, steps)), cpu)
    cpu = np.clip(cpu, 0.0, 1.0)
    walk = np.cumsum(rng.standard_normal((n, steps)) * 0.002, axis=1)
    memory = memory_base[:, None] * (1 + walk + 0.01 * rng.standard_normal((n, steps)))

    # A root missing one signal family.
    if rng.random() < 0.25:
        fault.missing = str(rng.choice(list(SIGNALS)))
    series: dict[SeriesKey, Array] = {}
    for i, name in enumerate(names):
        values = {RATE: rate[i], ERRORS: observed_error[i], LATENCY: latency[i], P95: p95[i]}
        if not leaf_store[i]:
            values |= {CPU: cpu[i], MEMORY: memory[i], RESTARTS: restarts[i]}
        for metric, v in values.items():
            if i == root and fault.missing and metric in SIGNALS[fault.missing]:
                continue
            v = v.astype(np.float64).copy()
            v[rng.random(steps) < 0.005] = np.nan  # scrape gaps
            series[SeriesKey(name, metric)] = v

    # Decoy deployments on healthy services within the half hour before onset.
    for d in rng.choice(decoys, size=min(len(decoys), int(rng.integers(0, 3))), replace=False).tolist():
        fault.decoy_deployments.append(names[d])
        at = onset_ms - int(rng.integers(-6, 180)) * STEP_MS
        changes.append(CaseChange(at, names[d], f"v{rng.integers(2, 40)}.{rng.integers(0, 20)}", id=f"chg-{d}"))

    # First failing spans of sampled error traces after onset: where a service's own errors happened.
    traces: list[TraceOrigin] = []
    if rng.random() < 0.33:
        fault.traces = False
    else:
        own_failures = np.clip(own_err[:, after], 0, 1) * rate[:, after] * 10 * 0.05
        for i, expected in enumerate(own_failures.sum(axis=1).tolist()):
            count = int(rng.poisson(expected))
            if count:
                traces.append(TraceOrigin(names[i], count, trace_id=f"{index:04d}{i:02d}{count:x}", span="handle"))

    signals = _alerts(series, ts, steps_normal)
    if not signals:
        return simulate(rng, shape, index)  # an incident needs an alert: draw again
    incident_onset = min(s.ts_ms for s in signals)
    alerted = list(dict.fromkeys(s.service for s in sorted(signals, key=lambda s: s.ts_ms)))
    target = next(
        (SeriesKey(s.service, m) for s in signals if s.service == names[0] for m in (LATENCY, ERRORS) if m in s.name),
        None,
    )
    case = Case(
        ts_ms=ts,
        series=series,
        edges=[(names[a], names[b]) for a, b in sorted(edges)],
        services=[*alerted, *[s for s in names if s not in alerted]],
        incident_services=alerted,
        changes=sorted(changes, key=lambda c: c.ts_ms),
        signals=signals,
        traces=traces,
        onset_ms=incident_onset,
        target=target,
    )
    return Scenario(case, fault, n)


def _alerts(series: dict[SeriesKey, Array], ts: npt.NDArray[np.int64], normal: int) -> list[CaseSignal]:
    """What the detection layer would have raised: beyond 8 robust deviations for three points in a row."""
    out: list[CaseSignal] = []
    for key, values in series.items():
        if key.metric not in (LATENCY, ERRORS, P95, RATE):
            continue
        base = values[:normal][np.isfinite(values[:normal])]
        median = float(np.median(base))
        spread = max(1.4826 * float(np.median(np.abs(base - median))), 1e-3 * abs(median), 1e-9)
        z = np.abs(np.nan_to_num(values[normal:], nan=median) - median) / spread
        hot = z > 8
        run = hot[:-2] & hot[1:-1] & hot[2:]
        if run.any():
            first = int(np.argmax(run)) + 2
            out.append(CaseSignal(key.service, f"{key.metric} anomalous", int(ts[normal + first])))
    return out


def evaluate(method: Method, shape: SimShape | None = None) -> dict[str, Any]:
    """AC@1..5 over every case, AC@1 per fault kind and per difficulty, seconds per case."""
    scenarios = generate(shape or SimShape())
    started = time.perf_counter()
    rankings = [method(s.case) for s in scenarios]
    elapsed = time.perf_counter() - started
    truths = [{s.fault.root} for s in scenarios]
    out: dict[str, Any] = summarize(rankings, truths)
    out["seconds_per_case"] = elapsed / len(scenarios)

    def ac1(pick: list[int]) -> dict[str, float | int | None]:
        if not pick:
            return {"ac1": None, "ac3": None, "cases": 0}
        got = summarize([rankings[i] for i in pick], [truths[i] for i in pick])
        return {"ac1": got["ac1"], "ac3": got["ac3"], "cases": len(pick)}

    idx = range(len(scenarios))
    out["by_fault"] = {k: ac1([i for i in idx if scenarios[i].fault.kind == k]) for k in FAULTS}
    hard: dict[str, Callable[[Fault], bool]] = {
        "noisy_root": lambda f: f.noisy_root,
        "root_missing_signal": lambda f: bool(f.missing),
        "caller_timeouts": lambda f: bool(f.timeouts),
        "no_traces": lambda f: not f.traces,
        "decoy_traffic": lambda f: bool(f.decoy_traffic),
        "decoy_deployment": lambda f: bool(f.decoy_deployments),
    }
    out["by_difficulty"] = {k: ac1([i for i in idx if test(scenarios[i].fault)]) for k, test in hard.items()}
    out["misses"] = [
        {"case": i, "kind": scenarios[i].fault.kind, "root": scenarios[i].fault.root, "top3": rankings[i][:3]}
        for i in idx
        if rankings[i][:1] != [scenarios[i].fault.root]
    ]
    return out


METHODS: dict[str, Method] = {"ours": ours, "baro": baro, "random": random_ranking(0), "robust-z": robust_z()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", choices=sorted(METHODS), default="ours")
    parser.add_argument("--cases", type=int, default=SimShape().cases)
    parser.add_argument("--seed", type=int, default=SimShape().seed)
    parser.add_argument("--misses", action="store_true", help="print the cases whose root was not first")
    args = parser.parse_args(argv)
    shape = SimShape(cases=args.cases, seed=args.seed)
    started = time.perf_counter()
    generate(shape)
    print(f"generated {shape.cases} cases in {time.perf_counter() - started:.1f} s")
    result = evaluate(METHODS[args.method], shape)
    print(
        f"{args.method}: AC@1 {result['ac1']:.3f}  AC@3 {result['ac3']:.3f}  Avg@5 {result['avg5']:.3f}  "
        f"({result['seconds_per_case']:.3f} s/case, {result['empty']:.1%} empty)"
    )
    for group in ("by_fault", "by_difficulty"):
        for name, f in result[group].items():
            if f["cases"]:
                print(f"  {name:20s} AC@1 {f['ac1']:.3f}  AC@3 {f['ac3']:.3f}  ({f['cases']} cases)")
    if args.misses:
        for m in result["misses"]:
            print(f"  case {m['case']:3d} {m['kind']:11s} root {m['root']:10s} <- {m['top3']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
