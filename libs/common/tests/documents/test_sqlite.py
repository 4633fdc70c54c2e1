"""What only the SQLite document store has to do: text without FTS5, files written before a field was indexed, and
projections of bodies its JSON functions refuse."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiops_common.documents import COLLECTIONS, DocumentFilter, sqlite
from aiops_common.documents import _protocol as protocol

pytestmark = pytest.mark.functional

AT = datetime(2026, 3, 1, tzinfo=UTC).isoformat()


async def test_text_is_matched_without_fts5(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite, "_has_fts5", lambda db: False)
    store = sqlite.SqliteDocumentStore(f"sqlite:///{tmp_path / 'd.sqlite'}")
    assert not store.fts5
    await store.upsert("logs", "l1", {"at": AT, "message": "Connection REFUSED by db-1"})
    await store.upsert("logs", "l2", {"at": AT, "message": "request served"})
    assert [d.id for d in (await store.query("logs", DocumentFilter(text="refused connection"))).documents] == ["l1"]
    assert await store.count("logs", DocumentFilter(text="served")) == 1
    await store.close()


async def test_a_field_indexed_later_is_filled_from_the_kept_bodies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'd.sqlite'}"
    logs = COLLECTIONS["logs"]
    narrower = dataclasses.replace(
        logs, fields={k: v for k, v in logs.fields.items() if k not in ("source", "message")}
    )
    with monkeypatch.context() as m:
        for module in (protocol, sqlite):
            m.setattr(module, "COLLECTIONS", {**COLLECTIONS, "logs": narrower})
        old = sqlite.SqliteDocumentStore(url)
        await old.upsert("logs", "l1", {"at": AT, "source": "pod-1", "message": "disk full"})
        with pytest.raises(ValueError, match="does not index 'source'"):
            await old.count("logs", DocumentFilter(terms=(("source", "pod-1"),)))
        await old.close()
    store = sqlite.SqliteDocumentStore(url)
    assert await store.count("logs", DocumentFilter(terms=(("source", "pod-1"),))) == 1
    assert await store.count("logs", DocumentFilter(text="disk")) == 1
    await store.upsert("logs", "l2", {"at": AT, "source": "pod-2", "message": "disk slow"})
    assert await store.count("logs", DocumentFilter(text="disk")) == 2
    await store.close()


async def test_a_projection_reads_a_body_holding_nan(tmp_path: Path) -> None:
    # Python's json writes NaN, SQLite's JSON functions refuse it: such a page is projected in Python instead.
    store = sqlite.SqliteDocumentStore(f"sqlite:///{tmp_path / 'documents.sqlite'}")
    try:
        at = "2026-01-01T00:00:00+00:00"
        await store.upsert("incidents", "a", {"started_at": at, "title": "x", "score": float("nan")})
        await store.upsert("incidents", "b", {"started_at": at, "title": "y", "score": 1.0})
        page = await store.query("incidents", fields=["title", "score"])
        bodies = {d.id: d.body for d in page.documents}
        assert bodies["b"] == {"title": "y", "score": 1.0}
        assert bodies["a"]["title"] == "x" and math.isnan(bodies["a"]["score"])
    finally:
        await store.close()
