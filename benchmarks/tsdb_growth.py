"""SQLite TSDB raw-sample insert rate as the samples table grows, written the way ``aiops up`` writes it.

Run with ``make bench-tsdb-growth``. 20,000 series each get one sample a second, in the
stream's writer batches (``BATCH_MESSAGES`` messages of 250 samples merged into one
``SqliteStore.write_sync``, every series known to the store), alone in this process and
with nothing else running, until the table holds ``--rows`` rows. The rate of each step of
``--step-rows`` rows is reported against the table's size at its end.

The samples table is clustered by series then time, so each sample of a batch lands on its
own series' page: the rate a soak's raw writer has depends on how large the table has grown
(docs/soak.md). Inside ``aiops up`` the writer shares two cores with every other service, so
it gets less than this.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from aiops_common.schemas import MetricBatch, SeriesMeta
from aiops_common.tsdb.sqlite import SqliteStore
from aiops_stream.tsdb_writer import BATCH_MESSAGES

__all__ = ["main"]

RESULTS = Path(__file__).parent / "results"
T0 = 1_700_000_000_000
MESSAGE_SAMPLES = 250
"""Samples per ``metrics.raw`` message in the soak (2,000-series requests over 8 partitions)."""


def grow(series: int, rows: int, step_rows: int, path: Path) -> list[dict[str, float]]:
    """Write one sample a second per series until ``rows`` rows; the rate of every ``step_rows``, with the table's
    size at its end."""
    metas = [SeriesMeta("soak_requests", {"job": "soak", "instance": f"i{i}"}) for i in range(series)]
    store = SqliteStore(f"sqlite:///{path}")
    per_write = BATCH_MESSAGES * MESSAGE_SAMPLES
    ids = np.arange(series, dtype=np.uint32)
    rng = np.random.default_rng(0)
    store.write_sync(MetricBatch(metas, ids, np.full(series, T0 - 1000, dtype=np.int64), np.ones(series)))
    steps: list[dict[str, float]] = []
    written, second, spent, step_written = 0, 0, 0.0, 0
    while written < rows:
        for start in range(0, series, per_write):
            chunk = ids[start : start + per_write]
            batch = MetricBatch(
                metas, chunk, np.full(chunk.size, T0 + second * 1000, dtype=np.int64), rng.random(chunk.size)
            )
            began = time.perf_counter()
            store.write_sync(batch)
            spent += time.perf_counter() - began
            written += chunk.size
            step_written += chunk.size
            if step_written >= step_rows:
                steps.append({"table_rows": written + series, "rows_per_s": step_written / spent})
                print(f"{(written + series) / 1e6:6.1f} M rows: {step_written / spent:10,.0f} rows/s", flush=True)
                step_written, spent = 0, 0.0
        second += 1
    return steps


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = result["steps"]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot([s["table_rows"] / 1e6 for s in steps], [s["rows_per_s"] / 1e3 for s in steps], marker="o")
    ax.axhline(result["soak_rate"] / 1e3, color="red", linestyle="--", label="soak rate (samples/s)")
    ax.set_xlabel("rows in the samples table (million)")
    ax.set_ylabel("thousand rows / s")
    ax.set_ylim(bottom=0)
    ax.set_title(f"SQLite TSDB raw inserts as the table grows ({result['series']:,} series, alone)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    """``make bench-tsdb-growth``: a temporary folder, about 6 minutes for 12 million rows."""
    from benchmarks.soak import SUSTAINABLE_RATE

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, default=20_000)
    parser.add_argument("--rows", type=int, default=12_000_000)
    parser.add_argument("--step-rows", type=int, default=1_000_000)
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tsdb.sqlite"
        steps = grow(args.series, args.rows, args.step_rows, path)
        table_bytes = path.stat().st_size
    result = {
        "series": args.series,
        "samples_per_write": BATCH_MESSAGES * MESSAGE_SAMPLES,
        "steps": steps,
        "table_bytes": table_bytes,
        "soak_rate": SUSTAINABLE_RATE,
        "sqlite_version": sqlite3.sqlite_version,
        "cpu_count": os.cpu_count(),
        "load_average_1m_at_end": os.getloadavg()[0],
        "run_s": time.monotonic() - started,
    }
    print(f"\n{'table rows (M)':>15} {'rows/s':>12}")
    for s in steps:
        print(f"{s['table_rows'] / 1e6:15.1f} {s['rows_per_s']:12,.0f}")
    print(f"table file: {table_bytes / 2**20:,.0f} MiB; soak rate {SUSTAINABLE_RATE:,} samples/s")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "tsdb_growth.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result, RESULTS / "tsdb_growth.png")


if __name__ == "__main__":
    main()
