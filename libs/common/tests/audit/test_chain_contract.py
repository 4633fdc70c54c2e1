"""The audit chain on every reachable document store: appends never fork or lose an entry, and tampering is named."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiops_common.audit import (
    GENESIS_HASH,
    AuditLog,
    AuditReport,
    audit_doc_id,
    entry_hash,
    parse_head,
    verify,
)
from aiops_common.documents import DocumentStore, open_document_store
from aiops_common.testing import OsmemServer
from aiops_common.testing.plain_json import PlainJsonNode

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(
    params=[
        pytest.param("sqlite", marks=pytest.mark.functional),
        pytest.param("osmem", marks=pytest.mark.integration),
    ]
)
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, external_server: Callable[..., Any]
) -> AsyncIterator[DocumentStore]:
    if request.param == "sqlite":
        yield open_document_store(f"sqlite:///{tmp_path / 'documents.sqlite'}")
        return
    from aiops_common.documents.elasticsearch import ElasticsearchDocumentStore

    server = external_server(OsmemServer)
    prefix = f"t{uuid.uuid4().hex[:12]}"
    es = ElasticsearchDocumentStore(f"elasticsearch://127.0.0.1:{server.port}/{prefix}", node_class=PlainJsonNode)
    yield es
    await es.drop()
    await es.close()


async def _append(log: AuditLog, n: int, at: datetime | None = None) -> None:
    await log.append(
        "alice",
        "incident.acknowledge",
        f"inc-{n % 3}",
        f"entry {n}",
        services=["payment"],
        details={"n": n},
        at=at or T0 + timedelta(minutes=n),
    )


async def _kinds(store: DocumentStore, head: tuple[int, str] | None = None) -> dict[str, int]:
    report = await verify(store, head)
    return {p.kind: p.seq for p in report.problems}


async def test_appends_make_one_chain_that_verifies(store: DocumentStore) -> None:
    empty = await verify(store)
    assert (empty.entries, empty.head, empty.intact) == (0, None, True)
    log = AuditLog(store)
    first = await log.append("alice", "config.update", "detection", "flag_score 0.3", details={"version": 1})
    assert (first.seq, first.prev_hash, first.id) == (1, GENESIS_HASH, "audit-000000000001")
    assert first.hash == entry_hash(first.body) and len(first.hash) == 64
    # Values JSON keeps otherwise (a tuple, a time) are hashed as they are stored.
    odd = await log.append("alice", "x", "s", "odd", details={"ids": ("a", "b"), "when": T0})
    assert odd.body["details"] == {"ids": ["a", "b"], "when": str(T0)}
    for n in range(3, 31):
        await _append(log, n)
    stored = await store.get("audit", audit_doc_id(2))
    assert stored is not None and stored.body == odd.body and stored.body["prev_hash"] == first.hash
    report = await verify(store)
    assert (report.entries, report.intact, report.problems) == (30, True, [])
    assert report.head is not None and report.head[0] == 30
    assert parse_head(report.head_text()) == report.head
    # A second log on the same store starts from the stored tail, not from nothing.
    later = await AuditLog(store).append("bob", "incident.resolve", "inc-1", "done")
    assert later.seq == 31 and later.prev_hash == report.head[1]
    assert (await verify(store, report.head)).intact


async def test_concurrent_writers_on_one_store_lose_nothing_and_never_fork(store: DocumentStore) -> None:
    one, two = AuditLog(store), AuditLog(store)
    await asyncio.gather(*(_append(one if n % 2 else two, n) for n in range(40)))
    report = await verify(store)
    assert (report.entries, report.intact) == (40, True), report.problems
    bodies = [await store.get("audit", audit_doc_id(seq)) for seq in range(1, 41)]
    assert sorted(d.body["details"]["n"] for d in bodies if d is not None) == list(range(40))


async def test_a_writer_whose_clock_is_behind_still_appends_at_the_end(store: DocumentStore) -> None:
    ahead = AuditLog(store)
    for n in range(5):
        await _append(ahead, n, at=T0 + timedelta(days=1, minutes=n))
    behind = await AuditLog(store).append("bob", "x", "s", "late clock", at=T0)
    assert behind.seq == 6
    assert (await verify(store)).intact


async def test_an_edited_entry_is_named(store: DocumentStore) -> None:
    log = AuditLog(store)
    for n in range(1, 11):
        await _append(log, n)
    stored = await store.get("audit", audit_doc_id(4))
    assert stored is not None
    await store.upsert("audit", stored.id, {**stored.body, "actor": "mallory"})
    assert await _kinds(store) == {"edited": 4}
    # Rehashing the edited entry moves the break to the link that follows it.
    forged = {**stored.body, "actor": "mallory"}
    forged["hash"] = entry_hash(forged)
    await store.upsert("audit", stored.id, forged)
    assert await _kinds(store) == {"deleted": 5}


async def test_deleted_entries_are_named(store: DocumentStore) -> None:
    log = AuditLog(store)
    # Entries 1 and 7 are the oldest by time, so the retention call removes exactly them.
    for n in range(1, 11):
        await _append(log, n, at=T0 - timedelta(days=1) if n in (1, 7) else None)
    assert await store.delete_older_than("audit", T0) == 2
    report = await verify(store)
    assert report.entries == 8 and report.head is not None and report.head[0] == 10
    assert {p.kind: p.seq for p in report.problems} == {"deleted": 1}
    assert report.counts == {"deleted": 2}
    assert "entry 1 is missing" in report.problems[0].message


async def test_swapped_entries_are_named_as_reordered(store: DocumentStore) -> None:
    log = AuditLog(store)
    for n in range(1, 11):
        await _append(log, n)
    five, six = await store.get("audit", audit_doc_id(5)), await store.get("audit", audit_doc_id(6))
    assert five is not None and six is not None
    await store.upsert("audit", five.id, six.body)
    await store.upsert("audit", six.id, five.body)
    assert await _kinds(store) == {"reordered": 5}


async def test_a_truncated_tail_shows_only_against_a_remembered_head(store: DocumentStore) -> None:
    log = AuditLog(store)
    for n in range(1, 11):
        await _append(log, n, at=T0 - timedelta(days=1) if n > 8 else None)
    head = (await verify(store)).head
    assert head is not None and head[0] == 10
    await store.delete_older_than("audit", T0)
    alone: AuditReport = await verify(store)
    assert (alone.entries, alone.intact) == (8, True)
    assert await _kinds(store, head) == {"truncated": 9}
    # The same head with another hash: the chain was rewritten up to it.
    fresh = AuditLog(store)
    await _append(fresh, 9)
    await _append(fresh, 10)
    assert await _kinds(store, head) == {"rewritten": 10}
    assert await _kinds(store, (await verify(store)).head) == {}
