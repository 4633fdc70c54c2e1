"""One contract for every reachable document store: SQLite always, osmem-server (the Elasticsearch API), and a real
Elasticsearch when ``AIOPS_TEST_ES_URL`` is set."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from aiops_common.documents import (
    COLLECTIONS,
    DOCUMENT_BACKENDS,
    EVERYTHING,
    DocumentFilter,
    DocumentStore,
    VersionConflictError,
    open_document_store,
)
from aiops_common.settings import CommonSettings
from aiops_common.testing import OsmemServer
from aiops_common.testing.plain_json import PlainJsonNode

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(
    params=[
        pytest.param("sqlite", marks=pytest.mark.functional),
        pytest.param("osmem", marks=pytest.mark.integration),
        pytest.param("elasticsearch", marks=pytest.mark.integration),
    ]
)
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, external_server: Callable[..., Any]
) -> AsyncIterator[DocumentStore]:
    # A prefix of its own per test: a real Elasticsearch may be shared with other runs.
    prefix = f"t{uuid.uuid4().hex[:12]}"
    if request.param == "sqlite":
        yield open_document_store(f"sqlite:///{tmp_path / 'documents.sqlite'}")
        return
    from aiops_common.documents.elasticsearch import ElasticsearchDocumentStore

    if request.param == "osmem":
        server = external_server(OsmemServer)
        es = ElasticsearchDocumentStore(f"elasticsearch://127.0.0.1:{server.port}/{prefix}", node_class=PlainJsonNode)
    else:
        url = os.environ.get("AIOPS_TEST_ES_URL")
        if not url:
            pytest.skip("AIOPS_TEST_ES_URL is not set (an Elasticsearch server to test against)")
        scheme = "elasticsearchs" if url.startswith("https://") else "elasticsearch"
        es = ElasticsearchDocumentStore(f"{scheme}://{url.partition('://')[2].rstrip('/')}/{prefix}")
    yield es
    await es.drop()
    await es.close()


def incident(
    n: int, *, services: list[str], status: str = "open", severity: str = "high", **more: Any
) -> dict[str, Any]:
    return {
        "started_at": (T0 + timedelta(minutes=n)).isoformat(),
        "services": services,
        "status": status,
        "severity": severity,
        "title": f"incident {n}",
        "members": [{"fingerprint": f"fp{n}", "lead": True, "reason": {"rule": "time", "gap_s": 3.5}}],
        **more,
    }


async def write_all(store: DocumentStore, collection: str, docs: dict[str, dict[str, Any]]) -> None:
    for doc_id, body in docs.items():
        await store.upsert(collection, doc_id, body)
    await store.refresh(collection)


async def ids(store: DocumentStore, collection: str, where: DocumentFilter = EVERYTHING, **kw: Any) -> list[str]:
    page = await store.query(collection, where, **kw)
    return [d.id for d in page.documents]


async def test_upsert_then_get_keeps_the_whole_body_and_counts_versions(store: DocumentStore) -> None:
    body = incident(1, services=["payment"])
    assert await store.upsert("incidents", "inc-1", body) == 1
    got = await store.get("incidents", "inc-1")
    assert got is not None
    assert (got.id, got.version, got.body) == ("inc-1", 1, body)
    changed = {**body, "status": "acknowledged"}
    assert await store.upsert("incidents", "inc-1", changed, expected_version=1) == 2
    again = await store.get("incidents", "inc-1")
    assert again is not None
    assert (again.version, again.body["status"]) == (2, "acknowledged")
    assert await store.get("incidents", "inc-2") is None
    # Collections are apart: the same id elsewhere is another document.
    assert await store.get("rca_results", "inc-1") is None


async def test_an_upsert_on_a_stale_version_is_refused_and_changes_nothing(store: DocumentStore) -> None:
    body = incident(1, services=["payment"])
    assert await store.upsert("incidents", "inc-1", body, expected_version=0) == 1
    assert await store.upsert("incidents", "inc-1", {**body, "status": "mitigated"}, expected_version=1) == 2
    with pytest.raises(VersionConflictError, match=r"incidents/inc-1.*expected version 1.*version 2 is stored") as e:
        await store.upsert("incidents", "inc-1", {**body, "status": "resolved"}, expected_version=1)
    assert (e.value.expected, e.value.stored) == (1, 2)
    with pytest.raises(VersionConflictError):
        await store.upsert("incidents", "inc-1", body, expected_version=0)
    with pytest.raises(VersionConflictError):
        await store.upsert("incidents", "inc-new", body, expected_version=3)
    got = await store.get("incidents", "inc-1")
    assert got is not None
    assert (got.version, got.body["status"]) == (2, "mitigated")
    assert await store.get("incidents", "inc-new") is None
    # No version named: written over whatever is stored (a replay, a single writer).
    assert await store.upsert("incidents", "inc-1", body) == 3


async def test_two_writers_from_the_same_version_one_wins(store: DocumentStore) -> None:
    await store.upsert("incidents", "inc-1", incident(1, services=["a"]))
    results = await asyncio.gather(
        *(
            store.upsert("incidents", "inc-1", incident(1, services=["a"], status=s), expected_version=1)
            for s in ("acknowledged", "resolved")
        ),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["VersionConflictError", "int"]
    got = await store.get("incidents", "inc-1")
    assert got is not None
    assert got.version == 2


async def test_query_by_time_range_newest_first_or_oldest_first(store: DocumentStore) -> None:
    await write_all(store, "incidents", {f"inc-{n}": incident(n, services=["a"]) for n in range(6)})
    window = DocumentFilter(start=T0 + timedelta(minutes=1), end=T0 + timedelta(minutes=4))
    assert await ids(store, "incidents", window) == ["inc-3", "inc-2", "inc-1"]
    assert await ids(store, "incidents", window, oldest_first=True) == ["inc-1", "inc-2", "inc-3"]
    assert await ids(store, "incidents", DocumentFilter(start=T0 + timedelta(minutes=4))) == ["inc-5", "inc-4"]
    # Another offset, the same instant.
    east = T0.astimezone(timezone(timedelta(hours=2)))
    assert await ids(store, "incidents", DocumentFilter(end=east + timedelta(minutes=1))) == ["inc-0"]


async def test_query_by_service_status_severity_and_other_keywords(store: DocumentStore) -> None:
    await write_all(
        store,
        "incidents",
        {
            "i1": incident(1, services=["payment", "db"], status="open", severity="critical"),
            "i2": incident(2, services=["db"], status="resolved", severity="critical"),
            "i3": incident(3, services=["checkout"], status="open", severity="low"),
            "i4": incident(4, services=["payment"], status="open", severity="critical"),
        },
    )
    assert await ids(store, "incidents", DocumentFilter(service="db")) == ["i2", "i1"]
    assert await ids(store, "incidents", DocumentFilter(status="open")) == ["i4", "i3", "i1"]
    assert await ids(store, "incidents", DocumentFilter(severity="critical", service="payment")) == ["i4", "i1"]
    assert await ids(store, "incidents", DocumentFilter(service="pay")) == []  # keywords match whole
    await write_all(
        store,
        "rca_results",
        {
            "r1": {"at": T0.isoformat(), "incident_id": "i1", "services": ["db"], "summary": "db pool exhausted"},
            "r2": {"at": T0.isoformat(), "incident_id": "i2", "services": ["db"], "summary": "disk full"},
        },
    )
    assert await ids(store, "rca_results", DocumentFilter(terms=(("incident_id", "i2"),))) == ["r2"]


async def test_free_text_needs_every_word_in_any_case(store: DocumentStore) -> None:
    await write_all(
        store,
        "incidents",
        {
            "i1": incident(1, services=["payment"], title="Payment latency high", summary="p99 over budget"),
            "i2": incident(2, services=["db"], title="Database down", summary="primary unreachable, latency"),
            "i3": incident(3, services=["db"], title="Disk full"),
        },
    )
    assert await ids(store, "incidents", DocumentFilter(text="latency")) == ["i2", "i1"]
    assert await ids(store, "incidents", DocumentFilter(text="PAYMENT Latency")) == ["i1"]
    assert await ids(store, "incidents", DocumentFilter(text="latency unreachable")) == ["i2"]
    assert await ids(store, "incidents", DocumentFilter(text="latency", service="db")) == ["i2"]
    assert await ids(store, "incidents", DocumentFilter(text="payment disk")) == []


async def test_pages_walk_every_match_once_in_order(store: DocumentStore) -> None:
    # Pairs share a time, so the id orders them: a page boundary inside a pair loses and repeats nothing.
    docs = {f"inc-{n:02d}": incident(n // 2, services=["a" if n % 3 else "b"]) for n in range(11)}
    await write_all(store, "incidents", docs)
    want = sorted(docs, key=lambda d: (docs[d]["started_at"], d), reverse=True)
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await store.query("incidents", limit=3, cursor=cursor)
        seen += [d.id for d in page.documents]
        pages += 1
        cursor = page.cursor
        if cursor is None:
            break
    assert (seen, pages) == (want, 4)
    oldest: list[str] = []
    cursor = None
    while True:
        page = await store.query("incidents", DocumentFilter(service="a"), oldest_first=True, limit=4, cursor=cursor)
        oldest += [d.id for d in page.documents]
        if (cursor := page.cursor) is None:
            break
    assert oldest == [d for d in reversed(want) if "a" in docs[d]["services"]]
    exact = await store.query("incidents", limit=11)
    assert (len(exact.documents), exact.cursor) == (11, None)


async def test_a_projection_reads_only_the_named_fields_and_pages_the_same(store: DocumentStore) -> None:
    docs = {
        f"inc-{n:02d}": incident(n, services=["a", "b"], rca={"causes": [{"service": "a", "p": 0.7}]}) for n in range(5)
    }
    await write_all(store, "incidents", docs)
    fields = ["title", "services", "rca", "members", "not_there"]
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = await store.query("incidents", DocumentFilter(service="a"), limit=2, cursor=cursor, fields=fields)
        for doc in page.documents:
            assert doc.version == 1
            assert doc.body == {**{f: docs[doc.id].get(f) for f in fields}}, doc.body
        seen += [d.id for d in page.documents]
        if (cursor := page.cursor) is None:
            break
    assert seen == sorted(docs, reverse=True)
    (one,) = (await store.query("incidents", limit=1, fields=["title"])).documents
    assert one.body == {"title": "incident 4"}
    for bad in ([], ["title", "doc.x"], ["a b"], ["$.title"]):
        with pytest.raises(ValueError, match="field"):
            await store.query("incidents", fields=bad)


async def test_count_takes_the_same_filters(store: DocumentStore) -> None:
    await write_all(
        store,
        "incidents",
        {
            f"i{n}": incident(n, services=["a" if n % 2 else "b"], status="open" if n < 5 else "resolved")
            for n in range(8)
        },
    )
    assert await store.count("incidents") == 8
    assert await store.count("incidents", DocumentFilter(service="a")) == 4
    assert await store.count("incidents", DocumentFilter(service="a", status="open")) == 2
    assert await store.count("incidents", DocumentFilter(start=T0 + timedelta(minutes=6))) == 2
    assert await store.count("executions") == 0


async def test_logs_older_than_the_retention_bound_are_deleted(store: DocumentStore) -> None:
    logs = {
        f"log-{n}": {
            "at": (T0 + timedelta(seconds=10 * n)).isoformat(),
            "services": ["payment"],
            "severity": "error" if n % 2 else "info",
            "source": "pod-1",
            "message": f"request {n} failed: timeout",
        }
        for n in range(10)
    }
    await write_all(store, "logs", logs)
    assert await store.delete_older_than("logs", T0 + timedelta(seconds=60)) == 6
    await store.refresh("logs")
    assert await store.count("logs") == 4
    assert await ids(store, "logs", DocumentFilter(severity="error", text="timeout")) == ["log-9", "log-7"]
    assert await store.get("logs", "log-0") is None
    assert await store.delete_older_than("logs", T0) == 0


async def test_what_a_collection_does_not_index_is_refused(store: DocumentStore) -> None:
    with pytest.raises(ValueError, match="no document collection 'nope'"):
        await store.get("nope", "x")
    with pytest.raises(ValueError, match="does not index 'severity'"):
        await store.query("rca_results", DocumentFilter(severity="high"))
    with pytest.raises(ValueError, match="not a keyword one"):
        await store.count("incidents", DocumentFilter(terms=(("title", "x"),)))
    with pytest.raises(ValueError, match="'started_at' as an ISO-8601 string"):
        await store.upsert("incidents", "i1", {"title": "no time"})
    with pytest.raises(ValueError, match="no time zone"):
        await store.upsert("incidents", "i1", {"started_at": "2026-03-01T12:00:00"})
    with pytest.raises(ValueError, match="no time zone"):
        await store.query("incidents", DocumentFilter(start=datetime(2026, 3, 1)))
    assert await store.get("incidents", "i1") is None


@pytest.mark.unit
def test_every_scheme_and_the_default_url() -> None:
    assert DOCUMENT_BACKENDS.schemes == ["elasticsearch", "elasticsearchs", "sqlite"]
    settings = CommonSettings(data_dir=Path("/tmp/x"))
    assert settings.documents_url == "sqlite:////tmp/x/documents.sqlite"


@pytest.mark.unit
def test_the_elasticsearch_mapping_comes_from_the_schema_table() -> None:
    from aiops_common.documents.elasticsearch import mapping

    for schema in COLLECTIONS.values():
        properties = mapping(schema)["properties"]
        assert properties[schema.time_field]["type"] == "date"
        for field, kind in schema.fields.items():
            want = {"time": "date", "keyword": "keyword", "keywords": "keyword", "text": "text"}[kind]
            assert properties[field]["type"] == want


@pytest.mark.unit
async def test_the_elasticsearch_url_names_scheme_credentials_and_index_prefix() -> None:
    from aiops_common.documents.elasticsearch import ElasticsearchDocumentStore

    plain = open_document_store("elasticsearch://es:9201")
    assert isinstance(plain, ElasticsearchDocumentStore)
    assert plain.index_prefix == "aiops-"
    tls = ElasticsearchDocumentStore("elasticsearchs://ops:s%40cret@es.example/prod")
    assert tls.index_prefix == "prod-"
    (node,) = tls._client.transport.node_pool.all()
    assert (node.config.scheme, node.config.host, node.config.port) == ("https", "es.example", 9200)
    assert tls._client._headers["authorization"].startswith("Basic ")
    await plain.close()
    await tls.close()


def log(n: int, message: str = "request failed: timeout", **more: Any) -> dict[str, Any]:
    at = (T0 + timedelta(seconds=n)).isoformat()
    return {"at": at, "services": ["payment"], "severity": "error", "source": "pod-1", "message": message, **more}


async def test_upsert_many_writes_new_and_stored_documents_like_upsert(store: DocumentStore) -> None:
    assert await store.upsert("logs", "log-0", log(0)) == 1
    assert await store.upsert("logs", "log-0", log(0, "second")) == 2
    batch = [(f"log-{n}", log(n, f"batch write {n}", labels={"pod": f"p{n}"})) for n in range(4)]
    assert await store.upsert_many("logs", batch) == 4
    await store.refresh("logs")
    for doc_id, body in batch:
        got = await store.get("logs", doc_id)
        assert got is not None
        assert (got.id, got.version, got.body) == (doc_id, 3 if doc_id == "log-0" else 1, body)
    assert await store.count("logs") == 4
    assert await ids(store, "logs", DocumentFilter(text="batch write"), oldest_first=True) == [d for d, _ in batch]
    # The text written over is no longer found: the old words went with the old body.
    assert await store.count("logs", DocumentFilter(text="second")) == 0
    # upsert after upsert_many goes on from the version upsert_many left.
    assert await store.upsert("logs", "log-1", log(1), expected_version=1) == 2
    assert await store.upsert_many("logs", []) == 0
    assert await store.upsert_many("incidents", [("inc-1", incident(1, services=["db"]))]) == 1
    assert await store.get("rca_results", "inc-1") is None


async def test_upsert_many_with_an_id_twice_keeps_the_later_body_and_counts_both_writes(
    store: DocumentStore,
) -> None:
    await store.upsert("logs", "old", log(0, "first"))
    batch = [("new", log(1, "early")), ("old", log(0, "middle")), ("new", log(1, "late")), ("old", log(0, "last"))]
    assert await store.upsert_many("logs", batch) == 4
    await store.refresh("logs")
    new, old = await store.get("logs", "new"), await store.get("logs", "old")
    assert new is not None and old is not None
    assert (new.version, new.body["message"]) == (2, "late")
    assert (old.version, old.body["message"]) == (3, "last")
    assert await ids(store, "logs", DocumentFilter(text="late")) == ["new"]
    assert await store.count("logs", DocumentFilter(text="early")) == 0
    assert await store.count("logs") == 2


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"message": "no time"}, r"logs/log-bad: a logs document needs 'at' as an ISO-8601 string"),
        ({"at": "2026-03-01T12:00:00"}, r"logs/log-bad: .*no time zone"),
        ({"at": "yesterday"}, r"logs/log-bad: Invalid isoformat string"),
        ({"at": T0.isoformat(), "seen": T0}, r"logs/log-bad: Object of type datetime is not JSON serializable"),
    ],
)
async def test_upsert_many_checks_every_body_first_and_a_bad_one_writes_nothing(
    store: DocumentStore, bad: dict[str, Any], message: str
) -> None:
    await store.upsert("logs", "log-1", log(1))
    batch = [("log-1", log(1, "changed")), ("log-2", log(2)), ("log-bad", bad), ("log-3", log(3))]
    with pytest.raises(ValueError, match=message):
        await store.upsert_many("logs", batch)
    await store.refresh("logs")
    got = await store.get("logs", "log-1")
    assert got is not None
    assert (got.version, got.body["message"]) == (1, "request failed: timeout")
    assert await store.count("logs") == 1
    with pytest.raises(ValueError, match="non-empty string"):
        await store.upsert_many("logs", [("log-4", log(4)), ("", log(5))])
    with pytest.raises(ValueError, match="no document collection 'nope'"):
        await store.upsert_many("nope", [("x", log(1))])
    assert await store.count("logs") == 1


async def test_upsert_many_takes_batches_larger_than_one_request(store: DocumentStore) -> None:
    batch = [(f"log-{n:04d}", log(n, f"line {n}")) for n in range(1234)]
    assert await store.upsert_many("logs", batch[:700]) == 700
    assert await store.upsert_many("logs", batch) == 1234
    await store.refresh("logs")
    assert await store.count("logs") == 1234
    for doc_id, version in (("log-0000", 2), ("log-0699", 2), ("log-0700", 1), ("log-1233", 1)):
        got = await store.get("logs", doc_id)
        assert got is not None
        assert (got.version, got.body["message"]) == (version, f"line {int(doc_id[4:])}")
    assert await ids(store, "logs", DocumentFilter(text="1233")) == ["log-1233"]


async def test_concurrent_upsert_many_on_the_same_ids_loses_no_write(store: DocumentStore) -> None:
    await store.upsert_many("logs", [(f"log-{n}", log(n)) for n in range(20)])
    writers = 4
    counts = await asyncio.gather(
        *(store.upsert_many("logs", [(f"log-{n}", log(n, f"writer {w}")) for n in range(20)]) for w in range(writers))
    )
    assert counts == [20] * writers
    for n in range(20):
        got = await store.get("logs", f"log-{n}")
        assert got is not None
        assert got.version == 1 + writers


async def test_documents_elasticsearch_refuses_in_a_bulk_write_are_named_in_one_error(store: DocumentStore) -> None:
    from aiops_common.documents.elasticsearch import BulkWriteError, ElasticsearchDocumentStore

    if not isinstance(store, ElasticsearchDocumentStore):
        pytest.skip("per-document refusals are Elasticsearch's; SQLite writes the whole call or nothing")
    await store.upsert("logs", "log-1", log(1))
    index = f"{store.index_prefix}logs"
    await store._client.indices.put_settings(index=index, settings={"index.blocks.write": True})
    try:
        with pytest.raises(BulkWriteError, match=r"logs: Elasticsearch refused 2 document\(s\).*log-1, log-2") as e:
            await store.upsert_many("logs", [("log-1", log(1, "changed")), ("log-2", log(2))])
        assert sorted(e.value.failed) == ["log-1", "log-2"]
        assert "cluster_block_exception" in e.value.failed["log-2"]
    finally:
        await store._client.indices.put_settings(index=index, settings={"index.blocks.write": False})
    await store.refresh("logs")
    got = await store.get("logs", "log-1")
    assert got is not None
    assert (got.version, got.body["message"]) == (1, "request failed: timeout")
