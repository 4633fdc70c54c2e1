"""The embedded TSDB: series and samples in one SQLite file (``sqlite:///path``), WAL, batched upserts."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt

from aiops_common.schemas.metrics import MetricBatch, series_key
from aiops_common.tsdb._protocol import LOOKBACK_MS, Series
from aiops_common.tsdb.samples import stale_mask

__all__ = ["SqliteStore", "path_from_url"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    labels TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS series_labels (
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    series_id INTEGER NOT NULL,
    PRIMARY KEY (name, value, series_id)
) WITHOUT ROWID;
-- Clustered by series then time: a range query is one index range scan per series. A NULL value is a
-- stale marker (SQLite keeps no NaN).
CREATE TABLE IF NOT EXISTS samples (
    series_id INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    value REAL,
    PRIMARY KEY (series_id, ts)
) WITHOUT ROWID;
"""


def path_from_url(url: str) -> Path:
    """``sqlite:///relative/file`` or ``sqlite:////absolute/file`` (the SQLAlchemy convention)."""
    if not url.startswith("sqlite://"):
        raise ValueError(f"not a sqlite URL: {url!r}")
    rest = url[len("sqlite://") :]
    if not rest.startswith("/") or len(rest) < 2:
        raise ValueError(f"sqlite URL needs a path: {url!r}")
    return Path(rest[1:])


class SqliteStore:
    """A :class:`~aiops_common.tsdb.TimeSeriesStore` in one SQLite file."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.path = path_from_url(url)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA temp_store=MEMORY")
            self._db.execute("PRAGMA cache_size=-65536")
            self._db.executescript(_SCHEMA)
        self._ids: dict[str, int] = {}

    # -- writing ----------------------------------------------------------------------------------------

    async def write(self, batch: MetricBatch) -> None:
        if len(batch):
            await asyncio.to_thread(self.write_sync, batch)

    def write_sync(self, batch: MetricBatch) -> None:
        with self._lock:
            self._db.execute("BEGIN")
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
                self._db.executemany(
                    "INSERT OR REPLACE INTO samples (series_id, ts, value) VALUES (?, ?, ?)",
                    zip(sid, ts, vals, strict=True),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                self._ids.clear()  # ids handed out in the rolled-back transaction are gone
                raise

    def _series_id(self, name: str, labels: Mapping[str, str]) -> int:
        key = series_key(name, labels)
        sid = self._ids.get(key)
        if sid is not None:
            return sid
        row = self._db.execute("SELECT id FROM series WHERE key = ?", (key,)).fetchone()
        if row is None:
            cur = self._db.execute(
                "INSERT INTO series (key, name, labels) VALUES (?, ?, ?)",
                (key, name, json.dumps(dict(sorted(labels.items())))),
            )
            sid = int(cur.lastrowid or 0)
            pairs = [("__name__", name, sid), *((k, v, sid) for k, v in labels.items())]
            self._db.executemany("INSERT OR IGNORE INTO series_labels (name, value, series_id) VALUES (?, ?, ?)", pairs)
        else:
            sid = int(row[0])
        self._ids[key] = sid
        return sid

    # -- reading ----------------------------------------------------------------------------------------

    async def query_range(
        self, matchers: Mapping[str, str], start_ms: int, end_ms: int, step_ms: int | None = None
    ) -> list[Series]:
        return await asyncio.to_thread(self.query_range_sync, matchers, start_ms, end_ms, step_ms)

    def query_range_sync(
        self, matchers: Mapping[str, str], start_ms: int, end_ms: int, step_ms: int | None = None
    ) -> list[Series]:
        if step_ms is not None and step_ms <= 0:
            raise ValueError("step_ms must be positive")
        with self._lock:
            found = self._matching(matchers)
            lo = start_ms if step_ms is None else start_ms - LOOKBACK_MS
            out: list[Series] = []
            for sid, name, labels in found:
                rows = self._db.execute(
                    "SELECT ts, value FROM samples WHERE series_id = ? AND ts BETWEEN ? AND ? ORDER BY ts",
                    (sid, lo, end_ms),
                ).fetchall()
                ts = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
                vals = np.fromiter((np.nan if r[1] is None else r[1] for r in rows), dtype=np.float64, count=len(rows))
                stale = np.fromiter((r[1] is None for r in rows), dtype=bool, count=len(rows))
                series = Series(name, labels)
                if step_ms is None:
                    series.ts_ms, series.values = ts[~stale], vals[~stale]
                else:
                    series.ts_ms, series.values = _at_steps(ts, vals, stale, start_ms, end_ms, step_ms)
                if series.ts_ms.size:
                    out.append(series)
        return sorted(out, key=lambda s: s.key)

    def _matching(self, matchers: Mapping[str, str]) -> list[tuple[int, str, dict[str, str]]]:
        if not matchers:
            raise ValueError("at least one matcher is needed")
        clauses = " INTERSECT ".join(
            "SELECT series_id FROM series_labels WHERE name = ? AND value = ?" for _ in matchers
        )
        params = [p for item in matchers.items() for p in item]
        rows = self._db.execute(
            f"SELECT id, name, labels FROM series WHERE id IN ({clauses}) ORDER BY key", params
        ).fetchall()
        return [(int(r[0]), str(r[1]), dict(json.loads(r[2]))) for r in rows]

    async def label_values(self, label: str, matchers: Mapping[str, str] | None = None) -> list[str]:
        return await asyncio.to_thread(self.label_values_sync, label, matchers)

    def label_values_sync(self, label: str, matchers: Mapping[str, str] | None = None) -> list[str]:
        with self._lock:
            if not matchers:
                rows = self._db.execute(
                    "SELECT DISTINCT value FROM series_labels WHERE name = ? ORDER BY value", (label,)
                ).fetchall()
                return [str(r[0]) for r in rows]
            ids = [sid for sid, _, _ in self._matching(matchers)]
            if not ids:
                return []
            marks = ",".join("?" * len(ids))
            rows = self._db.execute(
                f"SELECT DISTINCT value FROM series_labels WHERE name = ? AND series_id IN ({marks}) ORDER BY value",
                [label, *ids],
            ).fetchall()
            return [str(r[0]) for r in rows]

    async def close(self) -> None:
        with self._lock:
            self._db.close()


def _at_steps(
    ts: npt.NDArray[np.int64],
    vals: npt.NDArray[np.float64],
    stale: npt.NDArray[np.bool_],
    start_ms: int,
    end_ms: int,
    step_ms: int,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    steps = np.arange(start_ms, end_ms + 1, step_ms, dtype=np.int64)
    idx = np.searchsorted(ts, steps, side="right") - 1
    ok = idx >= 0
    ok[ok] = (~stale[idx[ok]]) & (steps[ok] - ts[idx[ok]] <= LOOKBACK_MS)
    return steps[ok], vals[idx[ok]]
