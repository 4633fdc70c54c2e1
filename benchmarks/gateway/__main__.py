"""The gateway under load: the incidents list (default page, and filtered) and an incident's detail, at 1, 10 and 50
concurrent clients, with 10,000 stored incidents, on SQLite and on the Elasticsearch API (osmem-server).

Run with ``make bench-gateway`` (``python -m benchmarks.gateway``); ``--quick`` for a short run.

For each document store: seeded, realistic incidents (``benchmarks.gateway.incidents``: 3-30 members, ~50 services,
30 days, most with their RCA summary and result, their anomaly members in ``anomalies``) are written to the store;
the real gateway runs as its own process (``python -m aiops_cli worker gateway`` on the embedded broker, rate
limits raised out of the way); a viewer key is made; then a load generator in another process
(``benchmarks.gateway.load``: aiohttp, keep-alive connections, a closed loop of N clients) sends each case for a
warm-up and then a measured period. Requests/s, p50/p95/p99 latency, errors and the gateway's CPU time per request
are reported. osmem-server (the in-memory OpenSearch-compatible server of the document store's contract suite) is
reached as ``elasticsearch://127.0.0.1:PORT`` through ``benchmarks.gateway.plain_json``, which only changes the
client's media type (osmem-server refuses Elasticsearch's versioned one).

Goal: p99 under 100 ms for the list at 50 concurrent clients on a 2-core machine.

Writes ``benchmarks/results/gateway.json`` and ``benchmarks/results/gateway.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import pstats
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
from aiops_cli.testing import WorkerProcess, worker_env
from aiops_common.broker import EmbeddedBroker, ensure_topics, free_port
from aiops_common.documents import DocumentStore, open_document_store
from aiops_common.testing import OsmemServer
from aiops_gateway.auth import Role
from aiops_gateway.auth.keys import KeyStore

from benchmarks.gateway.incidents import SERVICES, generate

RESULTS = Path(__file__).parent.parent / "results"
REPO = Path(__file__).resolve().parent.parent.parent
GOAL_P99_MS = 100.0
GOAL_CASE = "list"
_CHUNK = 500


@dataclass(frozen=True)
class Case:
    name: str
    what: str
    paths: list[str]


def _cases(ids: list[str], seed: int) -> list[Case]:
    rng = np.random.default_rng(seed)
    sample = [ids[int(i)] for i in rng.choice(len(ids), size=min(500, len(ids)), replace=False)]
    return [
        Case("list", "GET /api/v1/incidents (newest 50)", ["/api/v1/incidents"]),
        Case(
            "list_uncached",
            "GET /api/v1/incidents?limit=50&n=N (newest 50, a query never asked before: read from the store)",
            ["/api/v1/incidents?limit=50&n={n}"],
        ),
        Case(
            "list_filtered",
            "GET /api/v1/incidents?service=S&since=7d (one of 50 services)",
            [f"/api/v1/incidents?service={s}&since=7d" for s in SERVICES],
        ),
        Case("detail", "GET /api/v1/incidents/{id} (one of 500 stored)", [f"/api/v1/incidents/{i}" for i in sample]),
    ]


async def _fill(store: DocumentStore, count: int, seed: int) -> tuple[list[str], dict[str, int]]:
    """Write the incidents, their RCA results and anomalies; the incident ids."""
    ids: list[str] = []
    written = {"incidents": 0, "rca_results": 0, "anomalies": 0}
    pending: dict[str, list[tuple[str, dict[str, Any]]]] = {name: [] for name in written}

    async def flush(name: str, force: bool = False) -> None:
        if pending[name] and (force or len(pending[name]) >= _CHUNK):
            written[name] += await store.upsert_many(name, pending[name])
            pending[name] = []

    for batch in generate(count, datetime.now(UTC), seed=seed):
        ids.append(batch.incident[0])
        pending["incidents"].append(batch.incident)
        if batch.rca is not None:
            pending["rca_results"].append(batch.rca)
        pending["anomalies"].extend(batch.anomalies)
        for name in written:
            await flush(name)
    for name in written:
        await flush(name, force=True)
        await store.refresh(name)
    return ids, written


def _cpu_s(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


class Gateway:
    """``aiops worker gateway`` as its own process on a store; optionally under cProfile."""

    def __init__(self, workdir: Path, broker_url: str, prefix: str, documents_url: str, plain_json: bool) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.profile_path = workdir / "gateway.prof"
        data_dir = workdir / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        self.env = worker_env(
            broker_url,
            prefix,
            data_dir,
            log_level="WARNING",
            documents_url=documents_url,
            gateway_port=self.port,
            # One viewer key sends every request: the per-key limit would measure the limiter, not the gateway.
            gateway_rate_limit="100000000/minute",
            gateway_anonymous_rate_limit="100000000/minute",
        )
        self.plain_json = plain_json
        self.log_path = workdir / "gateway.log"
        self.worker: WorkerProcess | None = None

    async def start(self, profile: bool = False) -> None:
        http_port = free_port()
        env = dict(self.env, AIOPS_WORKER_HTTP_PORT=str(http_port))
        entry = ["-m", "benchmarks.gateway.plain_json"] if self.plain_json else ["-m", "aiops_cli"]
        command = [sys.executable]
        if profile:
            command += ["-m", "cProfile", "-o", str(self.profile_path)]
        command += [*entry, "worker", "gateway"]
        self.worker = WorkerProcess(_spawn(command, env, self.log_path), self.log_path, f"http://127.0.0.1:{http_port}")
        await self.worker.until_ready()

        async def ready() -> bool:
            try:
                async with httpx.AsyncClient(timeout=5.0) as client:
                    return (await client.get(self.url + "/ready")).status_code == 200
            except httpx.TransportError:
                return False

        await self.worker.eventually(ready, 60.0, "the gateway's /ready")

    @property
    def pid(self) -> int:
        assert self.worker is not None
        return self.worker.proc.pid

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.worker = None


def _spawn(command: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)


def _load(url: str, key: str, case: Case, concurrency: int, warmup_s: float, duration_s: float, workdir: Path) -> Any:
    spec = {
        "url": url,
        "key": key,
        "paths": case.paths,
        "concurrency": concurrency,
        "warmup_s": warmup_s,
        "duration_s": duration_s,
        "seed": concurrency,
    }
    path = workdir / f"load-{case.name}-{concurrency}.json"
    path.write_text(json.dumps(spec))
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.gateway.load", str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=warmup_s + duration_s + 120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the load generator failed: {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


async def _store(name: str, workdir: Path, broker_url: str, args: argparse.Namespace) -> dict[str, Any] | None:
    """Fill one store, start the gateway on it, run every case at every concurrency."""
    server: OsmemServer | None = None
    if name == "sqlite":
        url = f"sqlite:///{workdir / 'documents.sqlite'}"
        store = open_document_store(url)
    else:
        if OsmemServer.binary() is None:
            print("osmem-server is not installed (pip install osmem-server): the Elasticsearch-protocol run is skipped")
            return None
        from aiops_common.documents.elasticsearch import ElasticsearchDocumentStore
        from aiops_common.testing.plain_json import PlainJsonNode

        server = OsmemServer(workdir / "osmem")
        server.start()
        url = f"elasticsearch://127.0.0.1:{server.port}/bench"
        store = ElasticsearchDocumentStore(url, node_class=PlainJsonNode)
    gateway: Gateway | None = None
    try:
        started = time.perf_counter()
        ids, written = await _fill(store, args.incidents, args.seed)
        fill_s = time.perf_counter() - started
        _, key = await KeyStore(store).create("benchmark", Role.VIEWER, "benchmarks.gateway")
        await store.close()
        print(
            f"\n{name}: {written['incidents']:,} incidents, {written['rca_results']:,} RCA results, "
            f"{written['anomalies']:,} anomalies written in {fill_s:.1f} s"
        )
        prefix = f"benchgw{uuid.uuid4().hex[:6]}."
        await ensure_topics(broker_url, prefix)
        gateway = Gateway(workdir, broker_url, prefix, url, plain_json=name != "sqlite")
        await gateway.start(profile=args.profile is not None)
        cases = _cases(ids, args.seed)
        if args.profile is not None:
            cases = [c for c in cases if c.name == args.profile]
        rows: list[dict[str, Any]] = []
        async with httpx.AsyncClient(base_url=gateway.url, headers={"Authorization": f"Bearer {key}"}) as probe:
            for case in cases:
                answer = await probe.get(case.paths[0])
                if answer.status_code != 200:
                    print(f"  {case.name}: {case.paths[0]} answered {answer.status_code}: {answer.text[:200]}")
                    continue
                for concurrency in args.concurrency if args.profile is None else [max(args.concurrency)]:
                    cpu_before = _cpu_s(gateway.pid)
                    row = await asyncio.to_thread(
                        _load, gateway.url, key, case, concurrency, args.warmup_s, args.duration_s, workdir
                    )
                    cpu_s = _cpu_s(gateway.pid) - cpu_before
                    row.update(
                        case=case.name,
                        what=case.what,
                        gateway_cpu_ms_per_request=1000 * cpu_s / row["requests_total"]
                        if row["requests_total"]
                        else None,
                    )
                    rows.append(row)
                    _print_row(name, row)
        gateway.stop()
        if args.profile is not None:
            _print_profile(gateway.profile_path)
        return {"documents_url": url.split("//")[0] + "//…", "fill_s": fill_s, "written": written, "cases": rows}
    finally:
        if gateway is not None:
            gateway.stop()
        if server is not None:
            server.stop()


def _print_profile(path: Path) -> None:
    if not path.is_file():
        print("no profile was written (the gateway did not exit cleanly)")
        return
    stats = pstats.Stats(str(path))
    stats.sort_stats("tottime").print_stats(30)
    stats.sort_stats("cumulative").print_stats(45)


_HEADER = (
    f"{'store':7s} {'case':14s} {'clients':>7s} {'req/s':>8s} {'p50 ms':>8s} {'p95 ms':>8s} {'p99 ms':>8s} "
    f"{'errors':>6s} {'CPU ms/req':>10s}"
)


def _print_row(store: str, row: dict[str, Any]) -> None:
    cpu = row["gateway_cpu_ms_per_request"]
    print(
        f"{store:7s} {row['case']:14s} {row['concurrency']:7d} {row['rps']:8.1f} {row['p50_ms']:8.1f} "
        f"{row['p95_ms']:8.1f} {row['p99_ms']:8.1f} {row['errors']:6d} {cpu if cpu is not None else float('nan'):10.2f}"
    )


def plot(path: Path, result: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stores = [s for s in result["stores"] if result["stores"][s]]
    names = [c["name"] for c in result["cases"]]
    fig, axes = plt.subplots(len(stores), len(names), figsize=(5 * len(names), 3.8 * len(stores)), squeeze=False)
    for r, store in enumerate(stores):
        for c, case in enumerate(names):
            ax = axes[r][c]
            rows = sorted(
                (x for x in result["stores"][store]["cases"] if x["case"] == case), key=lambda x: x["concurrency"]
            )
            if not rows:
                ax.set_visible(False)
                continue
            clients = [x["concurrency"] for x in rows]
            for key, style in (("p50_ms", "o-"), ("p95_ms", "s--"), ("p99_ms", "^-")):
                ax.plot(clients, [x[key] for x in rows], style, label=key.removesuffix("_ms"))
            if case == GOAL_CASE:
                ax.axhline(GOAL_P99_MS, color="red", linestyle=":", linewidth=1, label="goal p99")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xticks(clients, [str(x) for x in clients])
            ax.set_xlabel("concurrent clients")
            ax.set_ylabel("latency (ms)")
            rps = ", ".join(f"{x['rps']:.0f}" for x in rows)
            ax.set_title(f"{store}: {case} (req/s {rps})", fontsize=9)
            ax.legend(fontsize=7)
    fig.suptitle(f"Gateway latency with {result['incidents']:,} stored incidents ({result['machine']['cpus']} cores)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {
        "incidents": args.incidents,
        "concurrency": args.concurrency,
        "warmup_s": args.warmup_s,
        "duration_s": args.duration_s,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "cases": [],
        "stores": {},
    }
    with (
        tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp,
        EmbeddedBroker(log_path=Path(tmp) / "broker.log") as broker,
    ):
        print(_HEADER)
        for name in args.stores:
            workdir = Path(tmp) / name
            workdir.mkdir()
            result["stores"][name] = await _store(name, workdir, broker.url, args)
    result["cases"] = [{"name": c.name, "what": c.what} for c in _cases(["x"], args.seed)]
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=10_000)
    parser.add_argument("--duration-s", type=float, default=15.0, help="measured seconds per case and concurrency")
    parser.add_argument("--warmup-s", type=float, default=3.0, help="seconds of load before measuring")
    parser.add_argument("--concurrency", default="1,10,50", help="clients, comma-separated")
    parser.add_argument("--stores", default="sqlite,osmem", help="sqlite and/or osmem (skipped when not installed)")
    parser.add_argument("--quick", action="store_true", help="1,000 incidents, 3 s per case after 1 s of warm-up")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--profile",
        choices=["list", "list_uncached", "list_filtered", "detail"],
        help="run only this case at the highest concurrency with the gateway under cProfile; print where it spends "
        "its time (writes no results)",
    )
    args = parser.parse_args(argv)
    args.concurrency = [int(x) for x in str(args.concurrency).split(",") if x.strip()]
    args.stores = [s.strip() for s in str(args.stores).split(",") if s.strip()]
    if args.quick:
        args.incidents, args.duration_s, args.warmup_s = min(args.incidents, 1_000), 3.0, 1.0
    started = time.perf_counter()
    result = asyncio.run(bench(args))
    result["elapsed_s"] = time.perf_counter() - started
    if args.profile is not None:
        return 0
    goals: dict[str, Any] = {}
    print()
    for store, outcome in result["stores"].items():
        if not outcome:
            continue
        top = max(args.concurrency)
        row = next((r for r in outcome["cases"] if r["case"] == GOAL_CASE and r["concurrency"] == top), None)
        if row is None:
            print(f"{store}: the list case did not run")
            continue
        met = row["p99_ms"] < GOAL_P99_MS and row["errors"] == 0
        goals[f"{store}_list_p99_ms<{GOAL_P99_MS:.0f}_at_{top}"] = met
        print(
            f"goal ({store}): list p99 at {top} clients {row['p99_ms']:.1f} ms (goal < {GOAL_P99_MS:.0f} ms, "
            f"no errors): {'met' if met else 'MISSED'}; {row['rps']:.0f} req/s"
        )
    result["goals"] = goals
    args.output.mkdir(parents=True, exist_ok=True)
    plot(args.output / "gateway.png", result)
    (args.output / "gateway.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output / 'gateway.json'} and {args.output / 'gateway.png'} ({result['elapsed_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
