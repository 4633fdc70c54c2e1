"""The SQLite TSDB's chunked write stores exactly what row-at-a-time upserts would, at every chunk edge."""

from __future__ import annotations

import math
import sqlite3
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from aiops_common.schemas import MetricBatch, MetricBatchBuilder, SeriesMeta
from aiops_common.tsdb.samples import STALE_NAN_BITS
from aiops_common.tsdb.sqlite import CHUNK_ROWS, SqliteStore

pytestmark = pytest.mark.functional

STALE = struct.unpack("<d", struct.pack("<Q", STALE_NAN_BITS))[0]
BASE = 1_700_000_000_000
REFUSED_TS = BASE - 1
SERIES = [SeriesMeta("chunk_test", {"i": str(i), "zone": "z1"}) for i in range(300)]

Stored = dict[tuple[str, int], float | None]
"""(series key, timestamp) -> the stored value, None for a stale marker."""


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    tsdb = SqliteStore(f"sqlite:///{tmp_path / 'tsdb.sqlite'}")
    yield tsdb
    tsdb._db.close()


def batch_of(rows: list[tuple[int, int, float]]) -> MetricBatch:
    """(series index into SERIES, timestamp, value) rows, in this order."""
    builder = MetricBatchBuilder()
    for i, ts, value in rows:
        builder.append(builder.series_id(SERIES[i], SERIES[i].key), ts, value)
    return builder.build()


def distinct_rows(n: int, value: float = 0.5) -> list[tuple[int, int, float]]:
    """``n`` samples of distinct (series, timestamp): the series cycle, time moves on one step per cycle."""
    return [(k % len(SERIES), BASE + (k // len(SERIES)) * 1_000, value + k) for k in range(n)]


def expected(rows: list[tuple[int, int, float]]) -> Stored:
    """What upserting ``rows`` one at a time leaves: the last of duplicates, stale as None, NaN not at all."""
    want: Stored = {}
    for i, ts, value in rows:
        if np.float64(value).view(np.uint64) == STALE_NAN_BITS:
            want[(SERIES[i].key, ts)] = None
        elif not math.isnan(value):
            want[(SERIES[i].key, ts)] = value
    return want


def stored(path: Path) -> Stored:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT s.key, x.ts, x.value FROM samples x JOIN series s ON s.id = x.series_id").fetchall()
    return {(str(key), int(ts)): value for key, ts, value in rows}


@pytest.mark.parametrize("n", [0, 1, CHUNK_ROWS - 1, CHUNK_ROWS, CHUNK_ROWS + 1, 2 * CHUNK_ROWS + 3])
def test_every_sample_is_stored_at_each_chunk_edge(store: SqliteStore, n: int) -> None:
    first = distinct_rows(n)
    store.write_sync(batch_of(first))  # new series: one transaction that adds them
    assert stored(store.path) == expected(first)
    # The same series again, now known: a batch up to one chunk is one statement, more is a transaction.
    again = [(i, ts + 500, value * 2) for i, ts, value in distinct_rows(n)]
    store.write_sync(batch_of(again))
    assert stored(store.path) == expected(first) | expected(again)


@pytest.mark.parametrize("n", [5, CHUNK_ROWS + 7])
def test_stale_markers_are_kept_as_null_and_nan_is_left_out(store: SqliteStore, n: int) -> None:
    rows = distinct_rows(n)
    rows[0] = (rows[0][0], rows[0][1], STALE)
    rows[-1] = (rows[-1][0], rows[-1][1], STALE)  # the row the last chunk is padded with
    rows[1] = (rows[1][0], rows[1][1], math.nan)
    for known in (False, True):
        if known:
            rows = [(i, ts + 500, value) for i, ts, value in rows]
        store.write_sync(batch_of(rows))
    got = stored(store.path)
    assert got[(SERIES[rows[0][0]].key, rows[0][1])] is None
    assert got[(SERIES[rows[-1][0]].key, rows[-1][1])] is None
    assert (SERIES[rows[1][0]].key, rows[1][1]) not in got
    assert {k: v for k, v in got.items() if k[1] % 1_000 == 500} == expected(rows)


@pytest.mark.parametrize("n", [3, 4, CHUNK_ROWS - 2, CHUNK_ROWS + 2])  # 4: the padding follows a duplicate
def test_the_last_of_duplicates_within_a_batch_wins(store: SqliteStore, n: int) -> None:
    rows = distinct_rows(n)
    (i, ts, _), (j, ts_j, _), (k, ts_k, _) = rows[:3]
    # Duplicates of the first row at the end of the first chunk, across the chunk boundary and last of all.
    for at, value in ((min(n, CHUNK_ROWS) - 1, 11.0), (n - 1, 22.0)):
        rows.insert(at, (i, ts, value))
    rows += [(i, ts, 33.0), (j, ts_j, STALE), (k, ts_k, 44.0), (k, ts_k, math.nan)]  # NaN does not undo the 44
    for known in (False, True):
        store.write_sync(batch_of(rows))
        got = stored(store.path)
        assert got == expected(rows), known
        assert got[(SERIES[i].key, ts)] == 33.0 and got[(SERIES[j].key, ts_j)] is None
        assert got[(SERIES[k].key, ts_k)] == 44.0


async def test_series_get_one_id_each_also_across_connections(store: SqliteStore, tmp_path: Path) -> None:
    store.write_sync(batch_of(distinct_rows(10)))
    # Another store on the same file knows none of them: it finds the ten and adds the rest after them.
    other = SqliteStore(store.url)
    try:
        other.write_sync(batch_of(distinct_rows(40)))
    finally:
        await other.close()
    with sqlite3.connect(store.path) as db:
        ids = dict(db.execute("SELECT key, id FROM series").fetchall())
        labels = db.execute("SELECT count(*) FROM series_labels").fetchone()[0]
    assert sorted(ids.values()) == list(range(1, 41))
    assert [ids[m.key] for m in SERIES[:40]] == list(range(1, 41))
    assert labels == 40 * 3  # __name__, i and zone of each
    assert await store.label_values("i", {"__name__": "chunk_test"}) == sorted(str(k) for k in range(40))
    got = await store.query_range({"__name__": "chunk_test", "i": "39"}, BASE, BASE + 1_000)
    assert [s.points() for s in got] == [[(BASE, 39.5)]]


@pytest.mark.parametrize(
    ("n", "series"),
    [(40, 4), (40, 20), (CHUNK_ROWS + 8, 4), (CHUNK_ROWS + 8, 20)],
    ids=["known-one-statement", "new-one-chunk", "known-chunks", "new-chunks"],
)
def test_a_failed_write_leaves_nothing_and_forgets_the_ids_it_handed_out(
    store: SqliteStore, n: int, series: int
) -> None:
    before = [(i, BASE, 1.0) for i in range(4)]
    store.write_sync(batch_of(before))  # series 0-3 exist before
    with sqlite3.connect(store.path) as db:
        db.execute(
            f"CREATE TRIGGER refuse BEFORE INSERT ON samples WHEN NEW.ts = {REFUSED_TS} "
            "BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
    rows = [(k % series, BASE + 1_000 * (k // series + 1), float(k)) for k in range(n)]
    rows[-1] = (rows[-1][0], REFUSED_TS, 0.0)  # the last sample of the last chunk is refused
    with pytest.raises(sqlite3.IntegrityError, match="refused"):
        store.write_sync(batch_of(rows))
    assert stored(store.path) == expected(before)
    with sqlite3.connect(store.path) as db:
        assert db.execute("SELECT count(*) FROM series").fetchone()[0] == 4  # new series were rolled back
        db.execute("DROP TRIGGER refuse")
    # Ids handed out by the rolled-back transaction are not reused for series the file does not hold.
    store.write_sync(batch_of(rows))
    assert stored(store.path) == expected(before) | expected(rows)
    with sqlite3.connect(store.path) as db:
        assert db.execute("SELECT count(*) FROM series").fetchone()[0] == series
        orphans = db.execute("SELECT count(*) FROM samples WHERE series_id NOT IN (SELECT id FROM series)")
        assert orphans.fetchone()[0] == 0


def test_a_write_of_known_series_takes_one_statement_per_chunk(store: SqliteStore) -> None:
    n = 2 * CHUNK_ROWS + 1
    store.write_sync(batch_of(distinct_rows(n)))
    statements: list[str] = []
    store._db.set_trace_callback(lambda sql: statements.append(sql.split(" (", 1)[0][:40]))
    try:
        store.write_sync(batch_of(distinct_rows(CHUNK_ROWS)))
        store.write_sync(batch_of(distinct_rows(n)))
    finally:
        store._db.set_trace_callback(None)
    upsert = "INSERT OR REPLACE INTO samples"
    assert statements == [upsert, "BEGIN IMMEDIATE", upsert, upsert, upsert, "COMMIT"]


async def test_more_new_series_than_a_chunk_get_their_ids_and_labels(store: SqliteStore) -> None:
    many = [SeriesMeta("many", {"n": str(n)}) for n in range(CHUNK_ROWS + 905)]
    batch = MetricBatch(many, np.arange(len(many), dtype=np.uint32), np.full(len(many), BASE), np.ones(len(many)))
    store.write_sync(batch)
    with sqlite3.connect(store.path) as db:
        ids = dict(db.execute("SELECT key, id FROM series").fetchall())
        labels = db.execute("SELECT count(*) FROM series_labels").fetchone()[0]
        samples = db.execute("SELECT count(*) FROM samples").fetchone()[0]
    assert [ids[m.key] for m in many] == list(range(1, len(many) + 1))
    assert labels == 2 * len(many) and samples == len(many)
    assert len(await store.label_values("n", {"__name__": "many"})) == len(many)
