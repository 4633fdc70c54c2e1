"""The document store in one SQLite file (``sqlite:///path``): a table per collection, FTS5 for its text."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from aiops_common.documents._protocol import (
    COLLECTIONS,
    EVERYTHING,
    Collection,
    Document,
    DocumentFilter,
    Page,
    VersionConflictError,
    check_fields,
    collection,
    decode_cursor,
    encode_cursor,
    indexed_values,
    instant_ms,
)
from aiops_common.tsdb.sqlite import path_from_url

__all__ = ["SqliteDocumentStore"]


def _values(text: str) -> list[Any]:
    try:
        values: list[Any] = orjson.loads(text)
    except orjson.JSONDecodeError:
        values = json.loads(text)
    return values


def _body(text: str) -> dict[str, Any]:
    """A stored body: orjson reads it several times faster than json (a page of incidents is most of a list
    request); a body written with NaN or Infinity, which orjson refuses as not JSON, is read by json."""
    try:
        body: dict[str, Any] = orjson.loads(text)
    except orjson.JSONDecodeError:
        body = json.loads(text)
    return body


def _has_fts5(db: sqlite3.Connection) -> bool:
    try:
        db.execute("CREATE VIRTUAL TABLE temp.fts5_probe USING fts5(x)")
    except sqlite3.OperationalError:
        return False
    db.execute("DROP TABLE temp.fts5_probe")
    return True


def _table(schema: Collection) -> str:
    return f'"docs_{schema.name}"'


def _fts(schema: Collection) -> str:
    return f'"fts_{schema.name}"'


def _table_ddl(schema: Collection) -> str:
    types = {"time": "INTEGER NOT NULL", "keyword": "TEXT", "keywords": "TEXT", "text": "TEXT"}
    columns = "".join(f',\n    "{field}" {types[kind]}' for field, kind in schema.fields.items())
    return (
        f"CREATE TABLE IF NOT EXISTS {_table(schema)} (\n    id TEXT NOT NULL UNIQUE,\n    version INTEGER NOT NULL,"
        f"\n    body TEXT NOT NULL{columns}\n)"
    )


def _ddl(schema: Collection, fts5: bool) -> str:
    table = _table(schema)
    statements = [
        _table_ddl(schema),
        f'CREATE INDEX IF NOT EXISTS "docs_{schema.name}_by_time" ON {table} ("{schema.time_field}", id)',
    ]
    statements += [
        f'CREATE INDEX IF NOT EXISTS "docs_{schema.name}_by_{field}" ON {table} ("{field}", "{schema.time_field}")'
        for field, kind in schema.fields.items()
        if kind == "keyword"
    ]
    if fts5 and schema.text_fields:
        text = ", ".join(f'"{field}"' for field in schema.text_fields)
        statements.append(f"CREATE VIRTUAL TABLE IF NOT EXISTS {_fts(schema)} USING fts5({text})")
    return ";\n".join(statements) + ";"


def _column_values(schema: Collection, body: Mapping[str, Any]) -> dict[str, Any]:
    """The indexed fields as column values: a keyword list as a JSON array, matched through json_each."""
    return _as_columns(schema, indexed_values(schema, body))


def _as_columns(schema: Collection, values: Mapping[str, Any]) -> dict[str, Any]:
    return {
        field: json.dumps(value) if schema.fields[field] == "keywords" and value is not None else value
        for field, value in values.items()
    }


_IDS_PER_SELECT = 500
"""Ids bound in one ``IN (...)``: well under the bound-parameter limit of every SQLite still in use (999)."""


@dataclass(frozen=True, slots=True)
class _Row:
    """One document of an ``upsert_many``, checked and encoded; ``writes``: how often the call named its id."""

    columns: list[Any]
    encoded: str
    text: list[str]
    writes: int


def _checked_rows(schema: Collection, documents: Sequence[tuple[str, Mapping[str, Any]]]) -> dict[str, _Row]:
    """Every document checked and encoded before anything is written; a repeated id keeps its later body."""
    rows: dict[str, _Row] = {}
    for doc_id, body in documents:
        if not isinstance(doc_id, str) or not doc_id:
            raise ValueError(f"{schema.name}: a document id must be a non-empty string, not {doc_id!r}")
        try:
            values = indexed_values(schema, body)
            encoded = json.dumps(body, separators=(",", ":"))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{schema.name}/{doc_id}: {exc} (nothing of this upsert_many was written)") from None
        columns = list(_as_columns(schema, values).values())
        text = [values[f] or "" for f in schema.text_fields]
        writes = rows[doc_id].writes + 1 if doc_id in rows else 1
        rows[doc_id] = _Row(columns, encoded, text, writes)
    return rows


class SqliteDocumentStore:
    """A :class:`~aiops_common.documents.DocumentStore` in one SQLite file, WAL so readers never wait on a writer.

    Text is matched with FTS5 where this SQLite has it, else by substring (close, but not whole words).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        path = path_from_url(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30.0)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self.fts5 = _has_fts5(self._db)
            for schema in COLLECTIONS.values():
                # Columns first: an index naming a column not there yet would index a string constant.
                self._db.execute(_table_ddl(schema))
                self._add_new_fields(schema)
                self._db.executescript(_ddl(schema, self.fts5))

    def _add_new_fields(self, schema: Collection) -> None:
        """Give a file written before a field was indexed its column, filled from the bodies kept."""
        table = _table(schema)
        have = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
        new = [field for field in schema.fields if field not in have]
        if not new:
            return
        for field in new:
            self._db.execute(
                f'ALTER TABLE {table} ADD COLUMN "{field}" {"INTEGER" if schema.fields[field] == "time" else "TEXT"}'
            )
        rows = self._db.execute(f"SELECT rowid, body FROM {table}").fetchall()
        sets = ", ".join(f'"{field}" = ?' for field in new)
        for rowid, body in rows:
            values = _column_values(schema, json.loads(body))
            self._db.execute(f"UPDATE {table} SET {sets} WHERE rowid = ?", (*(values[f] for f in new), rowid))
        if self.fts5 and any(schema.fields[field] == "text" for field in new):
            # An FTS5 table's columns are fixed: build it again with the new text field.
            self._db.execute(f"DROP TABLE IF EXISTS {_fts(schema)}")
            self._db.executescript(_ddl(schema, self.fts5))
            names = ", ".join(f'"{field}"' for field in schema.text_fields)
            filled = ", ".join(f"""COALESCE("{field}", '')""" for field in schema.text_fields)
            self._db.execute(f"INSERT INTO {_fts(schema)} (rowid, {names}) SELECT rowid, {filled} FROM {table}")

    def _upsert(self, schema: Collection, doc_id: str, body: Mapping[str, Any], expected: int | None) -> int:
        values = indexed_values(schema, body)
        stored_values = _column_values(schema, body)
        encoded = json.dumps(body, separators=(",", ":"))
        table = _table(schema)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(f"SELECT rowid, version FROM {table} WHERE id = ?", (doc_id,)).fetchone()
                stored = 0 if row is None else int(row[1])
                if expected is not None and expected != stored:
                    raise VersionConflictError(schema.name, doc_id, expected, stored)
                version = stored + 1
                fields = list(stored_values)
                if row is None:
                    names = ", ".join(f'"{f}"' for f in fields)
                    marks = ", ".join("?" * len(fields))
                    cursor = self._db.execute(
                        f"INSERT INTO {table} (id, version, body, {names}) VALUES (?, ?, ?, {marks})",
                        (doc_id, version, encoded, *stored_values.values()),
                    )
                    rowid = cursor.lastrowid
                else:
                    rowid = row[0]
                    sets = ", ".join(f'"{f}" = ?' for f in fields)
                    self._db.execute(
                        f"UPDATE {table} SET version = ?, body = ?, {sets} WHERE rowid = ?",
                        (version, encoded, *stored_values.values(), rowid),
                    )
                if self.fts5 and schema.text_fields:
                    text = schema.text_fields
                    self._db.execute(f"DELETE FROM {_fts(schema)} WHERE rowid = ?", (rowid,))
                    self._db.execute(
                        f"INSERT INTO {_fts(schema)} (rowid, {', '.join(text)}) VALUES (?{', ?' * len(text)})",
                        (rowid, *(values[f] or "" for f in text)),
                    )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return version

    async def upsert(
        self, collection_name: str, doc_id: str, body: Mapping[str, Any], expected_version: int | None = None
    ) -> int:
        return await asyncio.to_thread(self._upsert, collection(collection_name), doc_id, body, expected_version)

    def _upsert_many(self, schema: Collection, documents: Sequence[tuple[str, Mapping[str, Any]]]) -> int:
        rows = _checked_rows(schema, documents)
        if not rows:
            return 0
        table, fields = _table(schema), list(schema.fields)
        names = ", ".join(f'"{f}"' for f in fields)
        marks = ", ".join("?" * len(fields))
        sets = ", ".join(f'"{f}" = excluded."{f}"' for f in fields)
        # A stored document goes up by as many versions as the call wrote it; a new one starts there.
        upsert = (
            f"INSERT INTO {table} (id, version, body, {names}) VALUES (?, ?, ?, {marks})"
            f" ON CONFLICT (id) DO UPDATE SET version = version + excluded.version, body = excluded.body, {sets}"
        )
        ids = list(rows)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    upsert, ((doc_id, row.writes, row.encoded, *row.columns) for doc_id, row in rows.items())
                )
                if self.fts5 and schema.text_fields:
                    rowids: list[tuple[int, str]] = []
                    for start in range(0, len(ids), _IDS_PER_SELECT):
                        chunk = ids[start : start + _IDS_PER_SELECT]
                        rowids += self._db.execute(
                            f"SELECT rowid, id FROM {table} WHERE id IN ({', '.join('?' * len(chunk))})", chunk
                        ).fetchall()
                    fts, text = _fts(schema), schema.text_fields
                    self._db.executemany(f"DELETE FROM {fts} WHERE rowid = ?", ((rowid,) for rowid, _ in rowids))
                    self._db.executemany(
                        f"INSERT INTO {fts} (rowid, {', '.join(text)}) VALUES (?{', ?' * len(text)})",
                        ((rowid, *rows[doc_id].text) for rowid, doc_id in rowids),
                    )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return len(documents)

    async def upsert_many(self, collection_name: str, documents: Sequence[tuple[str, Mapping[str, Any]]]) -> int:
        return await asyncio.to_thread(self._upsert_many, collection(collection_name), documents)

    def _run(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    async def get(self, collection_name: str, doc_id: str) -> Document | None:
        table = _table(collection(collection_name))
        rows = await asyncio.to_thread(self._run, f"SELECT id, version, body FROM {table} WHERE id = ?", (doc_id,))
        return Document(rows[0][0], rows[0][1], _body(rows[0][2])) if rows else None

    def _where(self, schema: Collection, where: DocumentFilter) -> tuple[list[str], list[object]]:
        conditions: list[str] = []
        args: list[object] = []
        start, end = where.range_ms()
        t = f'"{schema.time_field}"'
        if start is not None:
            conditions.append(f"{t} >= ?")
            args.append(start)
        if end is not None:
            conditions.append(f"{t} < ?")
            args.append(end)
        for field, kind, value in where.keyword_terms(schema):
            if kind == "keyword":
                conditions.append(f'"{field}" = ?')
            else:
                conditions.append(f'EXISTS (SELECT 1 FROM json_each("{field}") WHERE value = ?)')
            args.append(value)
        words = where.words()
        if words and not schema.text_fields:
            raise ValueError(f"collection {schema.name!r} indexes no text")
        if words and self.fts5:
            conditions.append(f"rowid IN (SELECT rowid FROM {_fts(schema)} WHERE {_fts(schema)} MATCH ?)")
            args.append(" ".join(f'"{w}"' for w in words))
        elif words:
            joined = " || ' ' || ".join(f"""COALESCE(lower("{f}"), '')""" for f in schema.text_fields)
            for word in words:
                conditions.append(f"({joined}) LIKE ?")
                args.append(f"%{word}%")
        return conditions, args

    async def query(
        self,
        collection_name: str,
        where: DocumentFilter = EVERYTHING,
        *,
        oldest_first: bool = False,
        limit: int = 100,
        cursor: str | None = None,
        fields: Sequence[str] | None = None,
    ) -> Page:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        schema = collection(collection_name)
        names = None if fields is None else check_fields(fields)
        conditions, args = self._where(schema, where)
        t = f'"{schema.time_field}"'
        after, order = (">", "ASC") if oldest_first else ("<", "DESC")
        if cursor is not None:
            ms, last_id = decode_cursor(cursor)
            conditions.append(f"({t} {after} ? OR ({t} = ? AND id {after} ?))")
            args += [ms, ms, last_id]
        # SQLite's JSON functions pick the fields out in C: a page of large bodies is not parsed whole. The paths
        # are given twice at least, so json_extract always answers with an array.
        paths = ", ".join(f"'$.{name}'" for name in (names * 2 if names and len(names) == 1 else names or []))
        body = f"json_extract(body, {paths})" if names else "body"
        sql = f"SELECT id, version, {body}, {t} FROM {_table(schema)}"
        if conditions:
            sql += " WHERE " + " AND ".join(conditions)
        sql += f" ORDER BY {t} {order}, id {order} LIMIT ?"
        try:
            rows = await asyncio.to_thread(self._run, sql, (*args, limit + 1))
        except sqlite3.OperationalError as exc:
            if not names or "malformed JSON" not in str(exc):
                raise
            # A body holding NaN or Infinity (Python's json writes them; SQLite's JSON functions refuse them):
            # the page is read whole and projected here.
            rows = await asyncio.to_thread(self._run, sql.replace(body, "body", 1), (*args, limit + 1))
            rows = [(r[0], r[1], json.dumps([_body(r[2]).get(n) for n in names]), r[3]) for r in rows]
        if names:
            documents = [Document(r[0], r[1], dict(zip(names, _values(r[2]), strict=False))) for r in rows[:limit]]
        else:
            documents = [Document(r[0], r[1], _body(r[2])) for r in rows[:limit]]
        more = len(rows) > limit
        return Page(documents, encode_cursor(rows[limit - 1][3], rows[limit - 1][0]) if more else None)

    async def count(self, collection_name: str, where: DocumentFilter = EVERYTHING) -> int:
        schema = collection(collection_name)
        conditions, args = self._where(schema, where)
        sql = f"SELECT count(*) FROM {_table(schema)}"
        if conditions:
            sql += " WHERE " + " AND ".join(conditions)
        rows = await asyncio.to_thread(self._run, sql, tuple(args))
        return int(rows[0][0])

    def _delete_older_than(self, schema: Collection, before_ms: int) -> int:
        table, t = _table(schema), f'"{schema.time_field}"'
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if self.fts5 and schema.text_fields:
                    self._db.execute(
                        f"DELETE FROM {_fts(schema)} WHERE rowid IN (SELECT rowid FROM {table} WHERE {t} < ?)",
                        (before_ms,),
                    )
                deleted = self._db.execute(f"DELETE FROM {table} WHERE {t} < ?", (before_ms,)).rowcount
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return int(deleted)

    async def delete_older_than(self, collection_name: str, before: datetime) -> int:
        schema = collection(collection_name)
        return await asyncio.to_thread(self._delete_older_than, schema, instant_ms(before))

    async def refresh(self, collection_name: str) -> None:
        collection(collection_name)  # every committed write is already visible

    async def close(self) -> None:
        with self._lock:
            self._db.close()
