"""A Faust table store that keeps a table's entries on disk instead of the heap (``disk://``).

The replaying stages (stream windows, detection, correlation) checkpoint their per-partition state into
changelog-backed tables of bytes. Faust's ``memory://`` store holds every newest entry as a Python object:
detection's alone is about 2 KB for each of 20,000 series, every one of them replaced at each checkpoint, and the
replaced blocks of slightly different sizes fragment the C heap (docs/soak.md, "Where the memory went"). The disk
store is Faust's memory store with its mapping in a SQLite file of the process's own: the same semantics (nothing
persists across a restart; a worker rebuilds the table from its changelog on start, as before), with the entries
in the file and only a small page cache in the process.

The file is made in the app's table folder and unlinked as soon as it is open, so a worker that stops in any way,
SIGKILL included, leaves nothing behind and two workers never share one. Faust selects the store by URL through
its ``faust.stores`` entry point (``pyproject.toml``).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
import threading
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

from faust.stores import memory
from faust.types import AppT, CollectionT

__all__ = ["CACHE_KIB", "DiskMap", "DiskStore"]

#: SQLite's page cache for one table's file (KiB): reads go to the file (the OS's page cache) past it.
CACHE_KIB = 2048

_UPSERT = "INSERT INTO entries (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"


class DiskMap(MutableMapping[bytes, bytes | None]):
    """bytes -> bytes in a SQLite file made in ``folder`` and unlinked once open.

    A value may be None: Faust's memory store sets a key to None while it applies a deletion from the changelog.
    The file is private scratch space (the table's changelog is what persists), so it runs without a journal or
    syncs, every statement its own transaction.
    """

    def __init__(self, folder: Path, prefix: str, cache_kib: int = CACHE_KIB) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f"{prefix}-", suffix=".sqlite", dir=folder)
        os.close(fd)
        try:
            self._db = sqlite3.connect(name, isolation_level=None, check_same_thread=False)
            for pragma in ("journal_mode=OFF", "synchronous=OFF", "locking_mode=EXCLUSIVE", f"cache_size=-{cache_kib}"):
                self._db.execute(f"PRAGMA {pragma}")
            self._db.execute("CREATE TABLE entries (key BLOB PRIMARY KEY, value BLOB)")
        finally:
            # Open (and locked exclusively) already: the file lives on unnamed until the connection closes.
            with contextlib.suppress(OSError):
                os.unlink(name)
        self._lock = threading.Lock()

    @staticmethod
    def _key(key: object) -> bytes:
        if not isinstance(key, bytes):
            raise TypeError(f"the disk table store keeps bytes keys, not {type(key).__name__}")
        return key

    def __getitem__(self, key: bytes) -> bytes | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM entries WHERE key = ?", (self._key(key),)).fetchone()
        if row is None:
            raise KeyError(key)
        value: bytes | None = row[0]
        return value

    def __setitem__(self, key: bytes, value: bytes | None) -> None:
        if value is not None and not isinstance(value, bytes):
            raise TypeError(f"the disk table store keeps bytes values, not {type(value).__name__}")
        with self._lock:
            self._db.execute(_UPSERT, (self._key(key), value))

    def __delitem__(self, key: bytes) -> None:
        with self._lock:
            deleted = self._db.execute("DELETE FROM entries WHERE key = ?", (self._key(key),)).rowcount
        if not deleted:
            raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, bytes):
            return False
        with self._lock:
            return self._db.execute("SELECT 1 FROM entries WHERE key = ?", (key,)).fetchone() is not None

    def __len__(self) -> int:
        with self._lock:
            (count,) = self._db.execute("SELECT count(*) FROM entries").fetchone()
        return int(count)

    def __iter__(self) -> Iterator[bytes]:
        with self._lock:  # a snapshot of the keys: the caller may change the map while it iterates
            keys = [key for (key,) in self._db.execute("SELECT key FROM entries")]
        return iter(keys)

    def clear(self) -> None:
        with self._lock:
            self._db.execute("DELETE FROM entries")

    def close(self) -> None:
        with self._lock:
            self._db.close()


class DiskStore(memory.Store[bytes, bytes]):
    """Faust's memory store with its entries in a :class:`DiskMap`: ``disk:///folder``, or the app's table folder."""

    def __init__(self, url: Any, app: AppT, table: CollectionT, **kwargs: Any) -> None:  # a str or Faust's URL
        super().__init__(url, app, table, **kwargs)  # Faust's memory store starts with a dict: replaced here
        self.data = DiskMap(Path(self.url.path or self.app.conf.tabledir), prefix=self.table_name)
