"""Write the sample case of ``aiops rca analyze`` next to this file: a bad payment release slows its callers.

Run ``python examples/rca/make_example.py`` to regenerate topology.json, metrics.csv and changes.json;
the output is the same on every run (seeded).

Two hours of 10 s RED series (``red.request_rate``, ``red.error_rate``, ``red.latency_s:p95``) and
``cpu.utilization`` for six services. Payment v2.4.1 is deployed at 14:17:30 UTC; from 14:20:00 its own
latency rises by 0.6 s and its errors from 0.4 % to 6 %. Its callers (checkout, then frontend) carry the
slowdown and the errors one scrape later each. Catalog's deployment at 14:09:00 is a decoy: nothing of
catalog moves.
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
START = datetime(2026, 3, 12, 13, 0, tzinfo=UTC)
STEP_S = 10
POINTS = 720  # two hours
ONSET = datetime(2026, 3, 12, 14, 20, tzinfo=UTC)
CULPRIT = "payment"

SERVICES = [
    {"name": "frontend", "tier": "edge", "team": "web"},
    {"name": "checkout", "tier": "app", "team": "payments"},
    {"name": "catalog", "tier": "app", "team": "web"},
    {"name": "payment", "tier": "app", "team": "payments"},
    {"name": "inventory", "tier": "app", "team": "fulfilment"},
    {"name": "postgres", "tier": "data", "team": "platform"},
]
CALLS = [
    ("frontend", "checkout"),
    ("frontend", "catalog"),
    ("checkout", "payment"),
    ("checkout", "inventory"),
    ("payment", "postgres"),
    ("inventory", "postgres"),
]
# Share of the frontend's requests each service serves, its own p95 (s), error ratio and CPU.
SHARE = {"frontend": 1.0, "checkout": 0.3, "catalog": 0.7, "payment": 0.3, "inventory": 0.36, "postgres": 0.96}
OWN_P95 = {"frontend": 0.02, "checkout": 0.03, "catalog": 0.045, "payment": 0.08, "inventory": 0.02, "postgres": 0.006}
OWN_ERRORS = {"frontend": 0.001, "checkout": 0.002, "catalog": 0.001, "payment": 0.004, "inventory": 0.001}
CPU = {"frontend": 0.3, "checkout": 0.25, "catalog": 0.4, "payment": 0.35, "inventory": 0.2, "postgres": 0.45}


def series(rng: np.random.Generator) -> dict[str, np.ndarray]:
    t = np.arange(POINTS) * STEP_S
    onset = int((ONSET - START).total_seconds()) // STEP_S
    fault = np.clip((np.arange(POINTS) - onset + 1) / 3, 0.0, 1.0)  # the release's slowdown ramps up over 30 s
    frontend_rps = 120 * (1 + 0.15 * np.sin(2 * np.pi * t / 7200)) + rng.normal(0, 3, POINTS)

    own_p95 = {s: v * rng.lognormal(0, 0.08, POINTS) for s, v in OWN_P95.items()}
    own_err = {s: np.clip(rng.normal(v, v / 3, POINTS), 0, 1) for s, v in OWN_ERRORS.items()}
    own_err["postgres"] = np.zeros(POINTS)
    own_p95[CULPRIT] = own_p95[CULPRIT] + 0.6 * fault * rng.lognormal(0, 0.1, POINTS)
    own_err[CULPRIT] = own_err[CULPRIT] + 0.056 * fault * rng.lognormal(0, 0.15, POINTS)

    def late(x: np.ndarray) -> np.ndarray:
        """A caller sees its callees' slowdown one 10 s scrape later."""
        return np.concatenate([x[:1], x[:-1]])

    p95: dict[str, np.ndarray] = {}
    err: dict[str, np.ndarray] = {}
    for service in ["postgres", "inventory", "payment", "catalog", "checkout", "frontend"]:  # callees first
        callees = [b for a, b in CALLS if a == service]
        p95[service] = own_p95[service] + sum((late(p95[c]) for c in callees), np.zeros(POINTS))
        # A callee's failures fail that share of the caller's requests.
        failed = sum((min(SHARE[c] / SHARE[service], 1.0) * late(err[c]) for c in callees), np.zeros(POINTS))
        err[service] = np.clip(own_err[service] + failed, 0, 1)

    out: dict[str, np.ndarray] = {}
    for service in SHARE:
        rps = SHARE[service] * frontend_rps * rng.lognormal(0, 0.02, POINTS)
        cpu = CPU[service] * (rps / (SHARE[service] * 120)) * rng.lognormal(0, 0.04, POINTS)
        if service == CULPRIT:
            cpu = cpu + 0.2 * fault  # the new release spins on its retries
        out[f"{service}:red.request_rate"] = rps
        out[f"{service}:red.error_rate"] = err[service]
        out[f"{service}:red.latency_s:p95"] = p95[service]
        out[f"{service}:cpu.utilization"] = np.clip(cpu, 0, 1)
    for values in out.values():
        values[rng.random(POINTS) < 0.003] = np.nan  # a scrape lost here and there
    return out


def rfc3339(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def main() -> None:
    rng = np.random.default_rng(20260312)
    columns = series(rng)
    topology = {"services": SERVICES, "dependencies": [{"from": a, "to": b} for a, b in CALLS]}
    (HERE / "topology.json").write_text(json.dumps(topology, indent=2) + "\n")
    changes = [
        {"ts": rfc3339(datetime(2026, 3, 12, 14, 9, tzinfo=UTC)), "service": "catalog", "version": "v1.9.0"},
        {"ts": rfc3339(datetime(2026, 3, 12, 14, 17, 30, tzinfo=UTC)), "service": CULPRIT, "version": "v2.4.1"},
    ]
    (HERE / "changes.json").write_text(json.dumps(changes, indent=2) + "\n")
    with (HERE / "metrics.csv").open("w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["timestamp", *columns])
        for i in range(POINTS):
            at = START + timedelta(seconds=i * STEP_S)
            cells = ["" if np.isnan(v[i]) else f"{v[i]:.6g}" for v in columns.values()]
            writer.writerow([rfc3339(at), *cells])


if __name__ == "__main__":
    main()
