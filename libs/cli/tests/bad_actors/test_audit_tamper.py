"""A tampered audit log of the running demo platform: an entry edited, deleted or moved directly in the SQLite document
store is found by ``aiops audit verify`` (non-zero exit, the place named); once undone, the chain verifies again."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest
from aiops_cli.demo.session import TOPOLOGY

from .conftest import Platform, aiops

pytestmark = pytest.mark.functional

TABLE = '"docs_audit"'


@contextmanager
def store(platform: Platform) -> Iterator[sqlite3.Connection]:
    path = Path(platform.data_dir) / "documents.sqlite"
    assert path.exists(), f"no document store at {path}"
    with closing(sqlite3.connect(path, timeout=30.0, isolation_level=None)) as db:
        yield db


def entry(db: sqlite3.Connection, seq: int) -> tuple[int, str]:
    """The row id and the stored body text (put back byte for byte when a test undoes its damage)."""
    row = db.execute(f"SELECT rowid, body FROM {TABLE} WHERE id = ?", (f"audit-{seq:012d}",)).fetchone()
    assert row is not None, f"no audit entry {seq}"
    return int(row[0]), str(row[1])


def verify(platform: Platform) -> tuple[int, str]:
    done = aiops("audit", "verify", env=platform.env)
    return done.returncode, done.stdout + done.stderr


@pytest.fixture(scope="module")
def chain(platform: Platform) -> Platform:
    """At least three entries: admin calls through the gateway, each audited (the shop's own topology, put back as
    the demo loaded it, so the demo's loop is not disturbed)."""
    with platform.client("admin") as admin:
        for _ in range(3):
            answer = admin.put("/api/v1/config/topology", json=TOPOLOGY)
            assert answer.status_code < 300, answer.text
    code, out = verify(platform)
    assert code == 0 and "chain intact" in out, out
    return platform


def test_an_edited_entry_is_named(chain: Platform) -> None:
    with store(chain) as db:
        rowid, original = entry(db, 2)
        edited = {**json.loads(original), "actor": "someone-else"}
        db.execute(f"UPDATE {TABLE} SET body = ? WHERE rowid = ?", (json.dumps(edited), rowid))
        try:
            code, out = verify(chain)
        finally:
            db.execute(f"UPDATE {TABLE} SET body = ? WHERE rowid = ?", (original, rowid))
    assert code != 0 and "edited at entry 2" in out, out
    assert verify(chain)[0] == 0


def test_a_deleted_entry_is_named(chain: Platform) -> None:
    with store(chain) as db:
        columns = [r[1] for r in db.execute(f"PRAGMA table_info({TABLE})")]
        rowid, _ = entry(db, 2)
        row = db.execute(f"SELECT rowid, * FROM {TABLE} WHERE rowid = ?", (rowid,)).fetchone()
        db.execute(f"DELETE FROM {TABLE} WHERE rowid = ?", (rowid,))
        try:
            code, out = verify(chain)
        finally:
            names = ", ".join(["rowid", *(f'"{c}"' for c in columns)])
            db.execute(f"INSERT INTO {TABLE} ({names}) VALUES ({', '.join('?' * len(row))})", row)
    assert code != 0 and "deleted at entry 2" in out, out
    assert verify(chain)[0] == 0


def test_entries_swapped_are_named(chain: Platform) -> None:
    with store(chain) as db:
        first_row, first = entry(db, 1)
        second_row, second = entry(db, 2)
        update = f"UPDATE {TABLE} SET body = ? WHERE rowid = ?"
        db.execute(update, (second, first_row))
        db.execute(update, (first, second_row))
        try:
            code, out = verify(chain)
        finally:
            db.execute(update, (first, first_row))
            db.execute(update, (second, second_row))
    assert code != 0 and "reordered at entry 1" in out, out
    assert verify(chain)[0] == 0
