"""Incident -> RCA result latency: gather a 50-service case from SQLite stores holding a day of history, analyse it.

Run ``python -m benchmarks.rca.latency``.

A SQLite TSDB (``aiops_common.tsdb.open_tsdb("sqlite:///...")``) holds a day of 10 s points for 50
services, four series each under the names the stream layer writes (``red.latency_s:value_10s``,
``red.error_rate:value_10s``, ``red.request_rate:value_10s``, ``process.cpu.utilization:value_10s``),
with a latency fault on one service for the last ten minutes (its callers slow down with it); a SQLite
topology store holds the 50 services and their call edges (the simulator's random call DAG). Each run
times ``aiops_rca.gather.gather_case`` for an incident on the fault (the entry and the root's callers
alerted; enough hops that the affected subgraph is all 50 services) and ``aiops_rca.engine.analyze``
on the case it returns, as the agent does. One warm-up run (imports, first queries) is reported apart.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
from aiops_common.schemas import (
    IncidentMember,
    IncidentRecord,
    IncidentSeverity,
    JoinReason,
    MemberKind,
    MetricBatchBuilder,
    MetricKind,
    SeriesMeta,
)
from aiops_common.topology import Dependency, Service, from_millis, open_topology_store
from aiops_common.tsdb import open_tsdb

from benchmarks.rca.simulator import topology

__all__ = ["measure"]

STEP_MS = 10_000
SERVICES = 50
DAY_MS = 86_400_000
AFTER_MS = 600_000
NOW_MS = 1_767_312_000_000
"""2026-01-02T00:00Z: the analysis runs ten minutes after onset, at the end of the day of history."""
ONSET_MS = NOW_MS - AFTER_MS
SERIES = (
    "red.latency_s:value_10s",
    "red.error_rate:value_10s",
    "red.request_rate:value_10s",
    "process.cpu.utilization:value_10s",
)


def _history(seed: int) -> tuple[list[str], list[tuple[str, str]], str, dict[str, dict[str, np.ndarray[Any, Any]]]]:
    rng = np.random.default_rng(seed)
    names, calls = topology(rng, SERVICES)
    n = len(names)
    ts = np.arange(NOW_MS - DAY_MS, NOW_MS + 1, STEP_MS, dtype=np.int64)
    steps = ts.size
    after = ts >= ONSET_MS
    root = int(rng.integers(n // 3, n))
    own = rng.lognormal(np.log(0.015), 0.6, n)[:, None] * rng.lognormal(0, 0.08, (n, steps))
    own[root] *= np.where(after, 6.0, 1.0)
    latency = np.zeros((n, steps))
    for i in reversed(range(n)):
        latency[i] = own[i] + sum((latency[b] * w for (a, b), w in calls.items() if a == i), np.zeros(steps))
    hours = (ts - ts[0]) / 3_600_000
    rate = rng.uniform(20, 400, n)[:, None] * (1 + 0.3 * np.sin(2 * np.pi * hours / 24))[None, :]
    rate = rate * (1 + 0.03 * rng.standard_normal((n, steps)))
    errors = np.clip(rng.uniform(0.001, 0.01, n)[:, None] * rng.lognormal(0, 0.3, (n, steps)), 0, 1)
    cpu = np.clip(rng.uniform(0.1, 0.4, n)[:, None] * rate / rate.mean(axis=1, keepdims=True), 0, 1)
    data = {
        name: dict(zip(SERIES, (latency[i], errors[i], rate[i], cpu[i]), strict=True)) for i, name in enumerate(names)
    }
    data["__ts__"] = {"ts": ts}
    return names, [(names[a], names[b]) for a, b in sorted(calls)], names[root], data


async def _fill(folder: Path, seed: int) -> tuple[str, str, list[str], list[tuple[str, str]], str, float]:
    names, calls, root, data = _history(seed)
    ts = data.pop("__ts__")["ts"]
    tsdb_url = f"sqlite:///{folder / 'tsdb.sqlite'}"
    topo_url = f"sqlite:///{folder / 'topology.sqlite'}"
    started = time.perf_counter()
    tsdb = open_tsdb(tsdb_url)
    try:
        for service in names:
            builder = MetricBatchBuilder()
            for name, values in data[service].items():
                meta = SeriesMeta(name, {"service": service}, MetricKind.GAUGE)
                sid = builder.series_id(meta, meta.key)
                builder.extend([sid] * ts.size, ts.tolist(), values.tolist())
            await tsdb.write(builder.build())
    finally:
        await tsdb.close()
    store = open_topology_store(topo_url)
    try:
        await store.upsert_services(Service(s) for s in names)
        first = from_millis(NOW_MS - DAY_MS)
        await store.upsert_dependencies(
            Dependency(a, b, frozenset({"traces"}), first, from_millis(NOW_MS)) for a, b in calls
        )
    finally:
        await store.close()
    return tsdb_url, topo_url, names, calls, root, time.perf_counter() - started


def _incident(root: str, names: list[str], calls: list[tuple[str, str]]) -> IncidentRecord:
    onset = from_millis(ONSET_MS)
    alerted = [names[0], *sorted({a for a, b in calls if b == root})]

    def member(service: str, after_s: int) -> IncidentMember:
        at = onset + timedelta(seconds=after_s)
        return IncidentMember(
            fingerprint=f"{service}-latency",
            kind=MemberKind.ANOMALY,
            name="red.latency_s:value_10s",
            service=service,
            started_at=at,
            reason=JoinReason(rule="seed" if after_s == 0 else "topology"),
            joined_at=at,
        )

    return IncidentRecord(
        id="inc-bench",
        revision=1,
        title=f"{names[0]} slow",
        severity=IncidentSeverity.CRITICAL,
        services=alerted,
        started_at=onset,
        updated_at=onset + timedelta(seconds=60),
        members=[member(s, 10 * i) for i, s in enumerate(alerted)],
    )


async def _run_once(tsdb_url: str, topo_url: str, incident: IncidentRecord, root: str, hops: int) -> dict[str, Any]:
    from aiops_rca.engine import analyze
    from aiops_rca.gather import Sources, gather_case
    from aiops_rca.settings import RcaSettings

    settings = RcaSettings(rca_hops=hops)
    tsdb = open_tsdb(tsdb_url)
    store = open_topology_store(topo_url)
    try:
        started = time.perf_counter()
        case = await gather_case(
            incident, Sources(tsdb=tsdb, topology=store, feedback=None, traces=None), settings, now_ms=NOW_MS
        )
        gathered = time.perf_counter()
        analysis = analyze(case, settings.config())
        done = time.perf_counter()
    finally:
        await tsdb.close()
        await store.close()
    ranking = [c.service for c in analysis.causes]
    return {
        "gather_s": gathered - started,
        "analyze_s": done - gathered,
        "total_s": done - started,
        "services": len(case.services),
        "series": len(case.series),
        "points": int(case.ts_ms.size),
        "root_rank": ranking.index(root) + 1 if root in ranking else None,
        "missing": list(case.missing),
    }


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(runs: int = 10, seed: int = 7) -> dict[str, Any]:
    """Fill the stores once, then time ``runs`` analyses after one warm-up."""
    with tempfile.TemporaryDirectory() as tmp:
        tsdb_url, topo_url, names, calls, root, fill_s = asyncio.run(_fill(Path(tmp), seed))
        incident = _incident(root, names, calls)
        hops = SERVICES  # every service of the graph is in the affected subgraph
        warm = asyncio.run(_run_once(tsdb_url, topo_url, incident, root, hops))
        timed = [asyncio.run(_run_once(tsdb_url, topo_url, incident, root, hops)) for _ in range(runs)]
    out: dict[str, Any] = {
        "services": timed[0]["services"],
        "series": timed[0]["series"],
        "points_per_series": timed[0]["points"],
        "history_points_per_series": DAY_MS // STEP_MS + 1,
        "fill_s": fill_s,
        "runs": runs,
        "warmup_total_s": warm["total_s"],
        "root_rank": timed[0]["root_rank"],
        "missing": timed[0]["missing"],
    }
    for part in ("gather_s", "analyze_s", "total_s"):
        values = [r[part] for r in timed]
        out[part.replace("_s", "")] = {
            "p50_s": statistics.median(values),
            "p95_s": _pct(values, 0.95),
            "max_s": max(values),
        }
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args(argv)
    r = measure(args.runs)
    print(
        f"{r['services']} services, {r['series']} series, {r['points_per_series']} points each in the case "
        f"(a day of {r['history_points_per_series']} points per series stored; filled in {r['fill_s']:.1f} s)"
    )
    for part in ("gather", "analyze", "total"):
        print(f"  {part:8s} p50 {r[part]['p50_s']:.3f} s  p95 {r[part]['p95_s']:.3f} s  max {r[part]['max_s']:.3f} s")
    print(f"  warm-up run {r['warmup_total_s']:.3f} s; the root ranked {r['root_rank']}; missing {r['missing']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
