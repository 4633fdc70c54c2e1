"""The embedded TSDB: series and samples in one SQLite file (``sqlite:///path``), WAL, batched upserts."""

from __future__ import annotations

import asyncio
import functools
import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt

from aiops_common.schemas.metrics import MetricBatch, SeriesMeta
from aiops_common.tsdb._protocol import LOOKBACK_MS, Series
from aiops_common.tsdb.samples import stale_mask

__all__ = ["CHUNK_ROWS", "SqliteStore", "path_from_url"]

CHUNK_ROWS = 4096
"""Most rows bound into one statement (16,384 variables for the widest, a series; SQLite allows 32,766)."""
_UPSERT = "INSERT OR REPLACE INTO samples (series_id, ts, value) VALUES {}"
_LOOKUP = "SELECT json_group_array(json_array(key, id)) FROM series WHERE key IN (VALUES {})"
_ADD_SERIES = "INSERT INTO series (id, key, name, labels) VALUES {}"
_ADD_LABELS = "INSERT OR IGNORE INTO series_labels (name, value, series_id) VALUES {}"

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
        """Store ``batch`` in one transaction, binding its rows into as few statements as possible.

        Python's sqlite3 lets go of the interpreter lock around every statement it steps and
        has to win it back after, which takes up to the switch interval (5 ms) when other
        threads are busy (the event loop of ``aiops up``). ``executemany`` steps once per row;
        here rows go into multi-row ``VALUES`` statements of up to :data:`CHUNK_ROWS` (a batch
        of known series up to that size is one statement, atomic on its own without
        ``BEGIN``/``COMMIT``), and new series are looked up and added a chunk at a time.
        """
        with self._lock:
            cache = self._ids
            ids = np.fromiter((cache.get(m.key, -1) for m in batch.series), dtype=np.int64, count=len(batch.series))
            new = bool(ids.size) and bool((ids < 0).any())
            try:
                if new:
                    self._db.execute("BEGIN IMMEDIATE")  # the write lock from the start: new ids follow max(id)
                    self._add_series([batch.series[i] for i in np.flatnonzero(ids < 0).tolist()])
                    ids = np.fromiter((cache[m.key] for m in batch.series), dtype=np.int64, count=len(batch.series))
                # A repeated sample replaces itself with itself: padding changes nothing stored.
                upserts = list(_statements(_UPSERT, _sample_params(ids, batch), 3, pad=True))
                if not new and len(upserts) <= 1:
                    for statement in upserts:
                        self._db.execute(*statement)
                    return
                if not new:
                    self._db.execute("BEGIN IMMEDIATE")
                for statement in upserts:
                    self._db.execute(*statement)
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                self._ids.clear()  # ids handed out in the rolled-back transaction are gone
                raise

    def _add_series(self, series: list[SeriesMeta]) -> None:
        """Give every series of ``series`` (all unknown to the cache) its id, adding those the file lacks."""
        wanted: dict[str, SeriesMeta] = {}
        for meta in series:
            wanted.setdefault(meta.key, meta)
        keys: list[object] = list(wanted)
        # One row (a JSON array) per lookup whatever the count: every row fetched would be another round trip.
        for statement in _statements(_LOOKUP, keys, 1, pad=True):
            (found,) = self._db.execute(*statement).fetchone()
            self._ids.update((str(key), int(sid)) for key, sid in json.loads(found))
        missing = [key for key in wanted if key not in self._ids]
        if not missing:
            return
        (top,) = self._db.execute("SELECT coalesce(max(id), 0) FROM series").fetchone()
        series_rows: list[object] = []
        label_rows: list[object] = []
        for sid, key in enumerate(missing, start=int(top) + 1):
            meta = wanted[key]
            series_rows += (sid, key, meta.name, json.dumps(dict(sorted(meta.labels.items()))))
            label_rows += ("__name__", meta.name, sid)
            for item in meta.labels.items():
                label_rows += (*item, sid)
            self._ids[key] = sid
        for statement in _statements(_ADD_SERIES, series_rows, 4, pad=False):  # a series twice would not be unique
            self._db.execute(*statement)
        for statement in _statements(_ADD_LABELS, label_rows, 3, pad=True):
            self._db.execute(*statement)

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


def _sample_params(ids: npt.NDArray[np.int64], batch: MetricBatch) -> list[object]:
    """``series_id, ts, value`` of every sample to store, flat; a stale marker's value is None, NaN is left out."""
    values = batch.value
    stale = stale_mask(values)
    keep = stale | ~np.isnan(values)
    rows = int(np.count_nonzero(keep))
    params: list[object] = [None] * (3 * rows)
    params[0::3] = ids[batch.sid[keep]].tolist()
    params[1::3] = batch.ts_ms[keep].tolist()
    params[2::3] = values[keep].tolist()
    for i in np.flatnonzero(stale[keep]).tolist():
        params[3 * i + 2] = None
    return params


def _statements(template: str, flat: list[object], columns: int, pad: bool) -> Iterator[tuple[str, list[object]]]:
    """``template`` with the rows of ``flat`` (``columns`` values each) as its ``VALUES``, in order, and their values.

    Every statement has a power of two rows, at most :data:`CHUNK_ROWS`, so there are few
    statement texts and sqlite3 finds them prepared in its statement cache. With ``pad``,
    the rows after the last full chunk go in one statement, padded by repeating the last
    row (for statements that a repeated row changes nothing in); without, in one
    statement per power of two of their count.
    """
    rows = len(flat) // columns
    first = 0
    while first < rows:
        left = min(rows - first, CHUNK_ROWS)
        size = 1 << (left - 1).bit_length() if pad else 1 << (left.bit_length() - 1)
        end = first + min(size, left)
        part = flat[columns * first : columns * end]
        if size > end - first:
            part.extend(part[-columns:] * (size - (end - first)))
        yield _sql(template, columns, size), part
        first = end


@functools.lru_cache(maxsize=64)  # 4 templates x 13 sizes
def _sql(template: str, columns: int, rows: int) -> str:
    return template.format(",".join(["(" + ",".join("?" * columns) + ")"] * rows))


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
