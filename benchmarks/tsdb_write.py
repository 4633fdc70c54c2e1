"""SQLite TSDB write throughput: one upsert per sample against multi-row statements, alone and beside a busy thread.

Run with ``make bench-tsdb-write``. Each run writes ``metrics.raw``-like messages (samples of
consecutive series out of 20,000, all known to the store, one timestamp per scrape) to a
fresh SQLite TSDB for a couple of seconds, three ways:

- ``executemany``: the write before (one transaction per message, ``executemany`` of one
  ``INSERT OR REPLACE`` per sample, the series key computed per series);
- ``chunked``: ``SqliteStore.write_sync`` per message (multi-row statements);
- ``chunked x16``: 16 messages merged into one ``write_sync``, as the stream's writer agents do.

"busy" runs a pure-Python thread beside the writer, as the event loop of ``aiops up`` is:
sqlite3 lets go of the interpreter lock around every statement it steps, and getting it
back from a busy thread takes up to the switch interval (5 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from aiops_common.schemas import MetricBatch, SeriesMeta
from aiops_common.schemas.metrics import series_key
from aiops_common.tsdb.samples import stale_mask
from aiops_common.tsdb.sqlite import SqliteStore
from aiops_stream.tsdb_writer import BATCH_MESSAGES, merge_batches

__all__ = ["main"]

RESULTS = Path(__file__).parent / "results"
SCRAPE_MS = 10_000
T0 = 1_700_000_000_000
METHODS = ("executemany", "chunked", f"chunked x{BATCH_MESSAGES}")


class Messages:
    """Messages of ``size`` samples: series ``[k * size, (k + 1) * size)`` modulo the count, scrape after scrape."""

    def __init__(self, series: list[SeriesMeta], size: int) -> None:
        self.series = series
        self.size = size
        self.rng = np.random.default_rng(7)
        self.k = 0

    def __iter__(self) -> Iterator[MetricBatch]:
        return self

    def __next__(self) -> MetricBatch:
        first = self.k * self.size
        self.k += 1
        index = np.arange(first, first + self.size) % len(self.series)
        scrape = first // len(self.series) + 1  # scrape 0 is the warm-up's
        return MetricBatch(
            [self.series[i] for i in index.tolist()],
            np.arange(self.size, dtype=np.uint32),
            np.full(self.size, T0 + scrape * SCRAPE_MS, dtype=np.int64),
            np.round(self.rng.normal(50, 10, self.size), 3),
        )


class NewSeries:
    """Messages of ``size`` samples of series never seen before (keys computed up front, as decoding leaves them)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.k = 0

    def __iter__(self) -> Iterator[MetricBatch]:
        return self

    def __next__(self) -> MetricBatch:
        first = self.k * self.size
        self.k += 1
        series = [
            SeriesMeta("bench_new", {"instance": f"host-{i % 500}", "series": str(i)})
            for i in range(first, first + self.size)
        ]
        for meta in series:
            _ = meta.key
        return MetricBatch(
            series,
            np.arange(self.size, dtype=np.uint32),
            np.full(self.size, T0, dtype=np.int64),
            np.ones(self.size),
        )


class ExecutemanyWriter:
    """The SQLite TSDB's write as it was: one transaction per batch, ``executemany`` of one upsert per sample."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "temp_store=MEMORY", "cache_size=-65536"):
            self.db.execute(f"PRAGMA {pragma}")
        self.ids = {str(key): int(sid) for key, sid in self.db.execute("SELECT key, id FROM series")}

    def write_sync(self, batch: MetricBatch) -> None:
        self.db.execute("BEGIN")
        try:
            ids = np.fromiter(
                (self._series_id(m.name, m.labels) for m in batch.series), dtype=np.int64, count=len(batch.series)
            )
            values = batch.value
            stale = stale_mask(values)
            keep = stale | ~np.isnan(values)
            sid = ids[batch.sid[keep]].tolist()
            ts = batch.ts_ms[keep].tolist()
            vals: list[float | None] = values[keep].tolist()
            for i in np.flatnonzero(stale[keep]).tolist():
                vals[i] = None
            self.db.executemany(
                "INSERT OR REPLACE INTO samples (series_id, ts, value) VALUES (?, ?, ?)",
                zip(sid, ts, vals, strict=True),
            )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            self.ids.clear()
            raise

    def _series_id(self, name: str, labels: Mapping[str, str]) -> int:
        key = series_key(name, labels)
        sid = self.ids.get(key)
        if sid is not None:
            return sid
        row = self.db.execute("SELECT id FROM series WHERE key = ?", (key,)).fetchone()
        if row is None:
            cur = self.db.execute(
                "INSERT INTO series (key, name, labels) VALUES (?, ?, ?)",
                (key, name, json.dumps(dict(sorted(labels.items())))),
            )
            sid = int(cur.lastrowid or 0)
            pairs = [("__name__", name, sid), *((k, v, sid) for k, v in labels.items())]
            self.db.executemany("INSERT OR IGNORE INTO series_labels (name, value, series_id) VALUES (?, ?, ?)", pairs)
        else:
            sid = int(row[0])
        self.ids[key] = sid
        return sid

    def close(self) -> None:
        self.db.close()


def _spin(stop: threading.Event) -> None:
    while not stop.is_set():
        for _ in range(1_000):
            pass


class Contender:
    """One way of writing (``method``) messages of ``size`` samples to its own fresh TSDB.

    Samples of ``series``, all known to the store; without, every sample is of a new series.
    """

    def __init__(self, method: str, size: int, series: list[SeriesMeta] | None, path: Path) -> None:
        self.size = size
        self.store = SqliteStore(f"sqlite:///{path}")
        if series is not None:
            # Every series known and one scrape stored before the clock starts, as in a running platform.
            n = len(series)
            self.store.write_sync(MetricBatch(series, np.arange(n, dtype=np.uint32), np.full(n, T0), np.ones(n)))
        self.old = ExecutemanyWriter(path) if method == "executemany" else None
        self.write: Callable[[MetricBatch], None] = self.old.write_sync if self.old else self.store.write_sync
        self.per_write = BATCH_MESSAGES if method.startswith("chunked x") else 1
        self.messages: Iterator[MetricBatch] = NewSeries(size) if series is None else Messages(series, size)

    def rate(self, seconds: float, busy: bool) -> float:
        """Samples/s over at least one write and about ``seconds``, beside a busy thread or not."""
        stop = threading.Event()
        spinner = threading.Thread(target=_spin, args=(stop,), daemon=True)
        if busy:
            spinner.start()
        written, spent = 0, 0.0
        try:
            while spent < seconds:
                batches = [next(self.messages) for _ in range(self.per_write)]
                started = time.perf_counter()
                self.write(merge_batches(batches))
                spent += time.perf_counter() - started
                written += self.size * self.per_write
        finally:
            stop.set()
            if busy:
                spinner.join()
        return written / spent

    def statements_per_message(self) -> float:
        """Statements SQLite runs per message (each one the interpreter lock let go and won back), one write's worth."""
        db = self.old.db if self.old is not None else self.store._db  # the store keeps its connection to itself
        ran: list[str] = []
        db.set_trace_callback(ran.append)
        try:
            self.write(merge_batches([next(self.messages) for _ in range(self.per_write)]))
        finally:
            db.set_trace_callback(None)
        return len(ran) / self.per_write

    def close(self) -> None:
        if self.old is not None:
            self.old.close()
        asyncio.run(self.store.close())


def measure(
    size: int, busy: bool, series: list[SeriesMeta] | None, args: argparse.Namespace, folder: Path
) -> list[dict[str, Any]]:
    """Every method on messages of ``size`` samples, in ``args.rounds`` rounds that take turns (the load on the
    machine drifts, and how the interpreter lock is handed over varies from run to run): the median and range."""
    contenders = {
        m: Contender(m, size, series, folder / f"{m.replace(' ', '-')}-{size}-{busy}-{series is None}.sqlite")
        for m in METHODS
    }
    rates: dict[str, list[float]] = {m: [] for m in METHODS}
    statements = {m: c.statements_per_message() for m, c in contenders.items()}
    try:
        for _ in range(args.rounds):
            for method, contender in contenders.items():
                rates[method].append(contender.rate(args.seconds / args.rounds, busy))
    finally:
        for contender in contenders.values():
            contender.close()
    out = []
    for method, got in rates.items():
        median = float(np.median(got))
        out.append(
            {
                "method": method,
                "samples_per_message": size,
                "busy": busy,
                "new_series": series is None,
                "samples_per_s": median,
                "samples_per_s_min": min(got),
                "samples_per_s_max": max(got),
                "ms_per_message": size / median * 1e3,
                "statements_per_message": statements[method],
            }
        )
    return out


def _run(runs: list[dict[str, Any]], method: str, size: int, busy: bool, new: bool) -> dict[str, Any]:
    key = (method, size, busy, new)
    return next(r for r in runs if (r["method"], r["samples_per_message"], r["busy"], r["new_series"]) == key)


def _rate(runs: list[dict[str, Any]], method: str, size: int, busy: bool, new: bool) -> float:
    return float(_run(runs, method, size, busy, new)["samples_per_s"])


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = result["runs"]
    known = [(size, busy, False) for size in result["message_sizes"] for busy in (False, True)]
    new = [(result["new_series_message_size"], busy, True) for busy in (False, True)]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8), width_ratios=[2, 1])
    width = 0.8 / len(METHODS)
    colors = ("#888888", "#7fb2d9", "#2b7bba")
    for ax, groups in zip(axes, (known, new), strict=True):
        for m, (method, color) in enumerate(zip(METHODS, colors, strict=True)):
            got = [_run(runs, method, *g) for g in groups]
            values = [r["samples_per_s"] / 1e3 for r in got]
            spread = [
                [v - r["samples_per_s_min"] / 1e3 for v, r in zip(values, got, strict=True)],
                [r["samples_per_s_max"] / 1e3 - v for v, r in zip(values, got, strict=True)],
            ]
            xs = [g + (m - 1) * width for g in range(len(groups))]
            ax.bar(xs, values, width, yerr=spread, capsize=2, label=method, color=color)
            for x, v, r in zip(xs, values, got, strict=True):  # the median, above the range's top
                ax.annotate(f"{v:,.0f}", (x, r["samples_per_s_max"] / 1e3), ha="center", va="bottom", fontsize=7)
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels([f"{s} samples/msg\n{'busy thread' if b else 'alone'}" for s, b, _ in groups])
    axes[0].axhline(result["needed_samples_per_s"] / 1e3, color="red", linestyle="--", label="rate the soak needs")
    axes[0].set_ylabel("thousand samples / s")
    axes[0].set_title(f"Samples of {result['series']:,} known series")
    axes[0].legend()
    axes[1].set_ylabel("thousand new series / s")
    axes[1].set_title("Samples of new series (one each)")
    fig.suptitle("SQLite TSDB writes: executemany (before) against multi-row statements (median, range of rounds)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    sys.setswitchinterval(0.005)  # CPython's default, stated: the busy runs depend on it
    series = [SeriesMeta("bench_metric", {"instance": f"host-{i % 500}", "series": str(i)}) for i in range(args.series)]
    for meta in series:
        _ = meta.key  # computed once, as for series decoded from metrics.raw
    plan = [(size, busy, False) for size in args.sizes for busy in (False, True)]
    plan += [(args.new_series_size, busy, True) for busy in (False, True)]
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for size, busy, new in plan:
            runs += measure(size, busy, None if new else series, args, Path(tmp))
    result = {
        "runs": runs,
        "series": args.series,
        "message_sizes": list(args.sizes),
        "new_series_message_size": args.new_series_size,
        "messages_per_write_merged": BATCH_MESSAGES,
        "seconds_per_run": args.seconds,
        "rounds_per_run": args.rounds,
        "needed_samples_per_s": 33_333,
        "switch_interval_s": sys.getswitchinterval(),
        "sqlite_version": sqlite3.sqlite_version,
        "cpu_count": os.cpu_count(),
        "load_average_1m_at_end": os.getloadavg()[0],
        "run_s": time.monotonic() - started,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "tsdb_write.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result, RESULTS / "tsdb_write.png")
    return result


def main() -> None:
    """``make bench-tsdb-write``: in process, a temporary folder, under a minute."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, default=20_000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[250, 2_000], help="samples per message")
    parser.add_argument("--seconds", type=float, default=1.5, help="write time measured per method and case")
    parser.add_argument("--rounds", type=int, default=3, help="turns the methods take, the median reported")
    parser.add_argument("--new-series-size", type=int, default=250, help="samples (new series) per message")
    args = parser.parse_args()
    result = run(args)
    columns = ("series", "samples/msg", "beside", "method", "stmts/msg", "samples/s", "range", "ms/msg", "vs before")
    print("{:<6}  {:>11}  {:<11}  {:<12}  {:>9}  {:>10}  {:>17}  {:>8}  {:>9}".format(*columns))
    for r in result["runs"]:
        size, busy, new = r["samples_per_message"], r["busy"], r["new_series"]
        before = _rate(result["runs"], "executemany", size, busy, new)
        print(
            f"{'new' if new else 'known':<6}  {size:>11}  {'busy thread' if busy else 'nothing':<11}  {r['method']:<12}"
            f"  {r['statements_per_message']:>9.2f}"
            f"  {r['samples_per_s']:>10,.0f}  {r['samples_per_s_min']:>8,.0f}-{r['samples_per_s_max']:<8,.0f}"
            f"  {r['ms_per_message']:>8.2f}  {r['samples_per_s'] / before:>8.1f}x"
        )
    print(f"wrote {RESULTS / 'tsdb_write.json'} and {RESULTS / 'tsdb_write.png'} in {result['run_s']:.0f} s")


if __name__ == "__main__":
    main()
