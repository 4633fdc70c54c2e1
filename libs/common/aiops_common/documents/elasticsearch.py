"""Elasticsearch as the document store (``elasticsearch://host:port[/prefix]``, ``elasticsearchs://`` for TLS)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlsplit

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
from aiops_common.extras import requires_extra

with requires_extra("elasticsearch", "the Elasticsearch document store"):
    from elasticsearch import AsyncElasticsearch, BadRequestError, ConflictError, NotFoundError

__all__ = ["BulkWriteError", "ElasticsearchDocumentStore", "connect", "mapping"]

_TYPES = {
    "time": {"type": "date", "format": "epoch_millis"},
    "keyword": {"type": "keyword"},
    "keywords": {"type": "keyword"},
    "text": {"type": "text"},
}


_BULK_CHUNK = 500
"""Documents per ``_mget`` and ``_bulk`` request: a log batch of thousands goes as a few requests of bounded size."""


class BulkWriteError(RuntimeError):
    """Documents of one ``upsert_many`` that Elasticsearch refused (``failed``: id -> reason); the others were
    written. Version conflicts are not among them: those are read again and written over, as ``upsert`` does."""

    def __init__(self, collection: str, failed: Mapping[str, str]) -> None:
        self.collection, self.failed = collection, dict(failed)
        by_reason: dict[str, list[str]] = {}
        for doc_id, reason in self.failed.items():
            by_reason.setdefault(reason, []).append(doc_id)
        refused = "; ".join(f"{reason}: {', '.join(ids)}" for reason, ids in by_reason.items())
        super().__init__(
            f"{collection}: Elasticsearch refused {len(self.failed)} document(s) of a bulk write: {refused}"
        )


def _reason(error: Any) -> str:
    if isinstance(error, Mapping):
        kind, why = error.get("type", "error"), error.get("reason")
        return f"{kind}: {why}" if why else str(kind)
    return str(error)


def connect(url: str, store: str, default_prefix: str, **client_options: Any) -> tuple[AsyncElasticsearch, str]:
    """The client an ``elasticsearch[s]://[user:password@]host[:port][/index-prefix]`` URL names, and the prefix of
    its indices (``<index-prefix>-``, else ``default_prefix``); every store on Elasticsearch connects through this.

    ``elasticsearchs://`` is TLS; credentials are URL-escaped; ``client_options`` go to
    :class:`elasticsearch.AsyncElasticsearch` as they are (a test's ``node_class``, ``ca_certs``...).
    """
    parts = urlsplit(url)
    if not parts.hostname:
        raise ValueError(f"{store} URL names no host: {url!r}")
    scheme = "https" if parts.scheme.lower() == "elasticsearchs" else "http"
    path = parts.path.strip("/")
    options: dict[str, Any] = dict(client_options)
    if parts.username is not None:
        options.setdefault("basic_auth", (unquote(parts.username), unquote(parts.password or "")))
    client = AsyncElasticsearch(f"{scheme}://{parts.hostname}:{parts.port or 9200}", **options)
    return client, f"{path}-" if path else default_prefix


def mapping(schema: Collection) -> dict[str, Any]:
    """The index mapping of a collection: its indexed fields by kind; the body is kept whole but not indexed."""
    properties: dict[str, Any] = {
        "id": {"type": "keyword"},
        "version": {"type": "long"},
        "doc": {"type": "object", "enabled": False},
    }
    properties.update({field: _TYPES[kind] for field, kind in schema.fields.items()})
    return {"dynamic": False, "properties": properties}


class ElasticsearchDocumentStore:
    """A :class:`~aiops_common.documents.DocumentStore` on Elasticsearch (or OpenSearch): one index per collection.

    An index holds ``{"id", "version", "doc": <body>, <indexed fields>}``; versions are checked with the
    document's sequence number, so a concurrent writer between the read and the write is refused too.
    ``client_options`` go to :class:`elasticsearch.AsyncElasticsearch` as they are.
    """

    def __init__(self, url: str, **client_options: Any) -> None:
        self.url = url
        self._client, self.index_prefix = connect(url, "document store", "aiops-", **client_options)
        self._ready: set[str] = set()

    def _index_name(self, schema: Collection) -> str:
        return f"{self.index_prefix}{schema.name}"

    async def _index(self, name: str) -> tuple[Collection, str]:
        schema = collection(name)
        index = self._index_name(schema)
        if index not in self._ready:
            try:
                await self._client.indices.create(index=index, mappings=mapping(schema))
            except BadRequestError as exc:
                if exc.error != "resource_already_exists_exception":
                    raise
                # Fields indexed since the index was made are added; documents written before have them
                # once written again.
                await self._client.indices.put_mapping(index=index, **mapping(schema))
            self._ready.add(index)
        return schema, index

    async def _stored(self, index: str, doc_id: str) -> tuple[int, int, int] | None:
        """(version, seq_no, primary_term) of the stored document, or None."""
        try:
            got = await self._client.get(index=index, id=doc_id, source_includes=["version"])
        except NotFoundError:
            return None
        return int(got["_source"]["version"]), int(got["_seq_no"]), int(got["_primary_term"])

    async def upsert(
        self, collection_name: str, doc_id: str, body: Mapping[str, Any], expected_version: int | None = None
    ) -> int:
        schema, index = await self._index(collection_name)
        values = {k: v for k, v in indexed_values(schema, body).items() if v is not None}
        while True:
            stored = await self._stored(index, doc_id)
            version = 0 if stored is None else stored[0]
            if expected_version is not None and expected_version != version:
                raise VersionConflictError(schema.name, doc_id, expected_version, version)
            source = {**values, "id": doc_id, "version": version + 1, "doc": dict(body)}
            try:
                if stored is None:
                    await self._client.index(index=index, id=doc_id, document=source, op_type="create")
                else:
                    await self._client.index(
                        index=index, id=doc_id, document=source, if_seq_no=stored[1], if_primary_term=stored[2]
                    )
            except ConflictError:
                if expected_version is not None:
                    now = await self._stored(index, doc_id)
                    raise VersionConflictError(
                        schema.name, doc_id, expected_version, 0 if now is None else now[0]
                    ) from None
                continue  # another writer came between the read and the write: write over what it wrote
            return version + 1

    async def _stored_many(self, index: str, ids: list[str]) -> dict[str, tuple[int, int, int]]:
        """(version, seq_no, primary_term) of each of ``ids`` that is stored."""
        got = await self._client.mget(index=index, ids=ids, source_includes=["version"])
        return {
            doc["_id"]: (int(doc["_source"]["version"]), int(doc["_seq_no"]), int(doc["_primary_term"]))
            for doc in got["docs"]
            if doc.get("found")
        }

    async def upsert_many(self, collection_name: str, documents: Sequence[tuple[str, Mapping[str, Any]]]) -> int:
        schema = collection(collection_name)
        # Every body is checked before the first request: a bad one writes nothing. A repeated id keeps its
        # later body, and its version counts every write.
        sources: dict[str, tuple[dict[str, Any], int]] = {}
        for doc_id, body in documents:
            if not isinstance(doc_id, str) or not doc_id:
                raise ValueError(f"{schema.name}: a document id must be a non-empty string, not {doc_id!r}")
            try:
                values = {k: v for k, v in indexed_values(schema, body).items() if v is not None}
                json.dumps(body)  # what SQLite stores is JSON; the same bodies are refused here as there
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{schema.name}/{doc_id}: {exc} (nothing of this upsert_many was written)") from None
            writes = sources[doc_id][1] + 1 if doc_id in sources else 1
            sources[doc_id] = ({**values, "id": doc_id, "doc": dict(body)}, writes)
        if not sources:
            return 0
        _, index = await self._index(collection_name)
        failed: dict[str, str] = {}
        pending = list(sources)
        while pending:
            conflicted: list[str] = []
            for start in range(0, len(pending), _BULK_CHUNK):
                chunk = pending[start : start + _BULK_CHUNK]
                stored = await self._stored_many(index, chunk)
                operations: list[Mapping[str, Any]] = []
                for doc_id in chunk:
                    source, writes = sources[doc_id]
                    now = stored.get(doc_id)
                    if now is None:
                        operations.append({"create": {"_id": doc_id}})
                    else:
                        operations.append({"index": {"_id": doc_id, "if_seq_no": now[1], "if_primary_term": now[2]}})
                    operations.append({**source, "version": (0 if now is None else now[0]) + writes})
                # No refresh, as upsert: queries see these writes once refresh() was called.
                done = await self._client.bulk(index=index, operations=operations)
                if not done["errors"]:
                    continue
                for doc_id, item in zip(chunk, done["items"], strict=True):
                    (result,) = item.values()
                    if "error" not in result:
                        continue
                    if result.get("status") == 409:
                        conflicted.append(doc_id)  # another writer came between the read and the write
                    else:
                        failed[doc_id] = _reason(result["error"])
            pending = conflicted
        if failed:
            raise BulkWriteError(schema.name, failed)
        return len(documents)

    async def get(self, collection_name: str, doc_id: str) -> Document | None:
        _, index = await self._index(collection_name)
        try:
            got = await self._client.get(index=index, id=doc_id)
        except NotFoundError:
            return None
        return _document(got["_source"])

    def _query(self, schema: Collection, where: DocumentFilter) -> dict[str, Any]:
        clauses: list[dict[str, Any]] = []
        start, end = where.range_ms()
        if start is not None or end is not None:
            bounds = {k: v for k, v in (("gte", start), ("lt", end)) if v is not None}
            clauses.append({"range": {schema.time_field: bounds}})
        clauses += [{"term": {field: value}} for field, _, value in where.keyword_terms(schema)]
        words = where.words()
        if words:
            if not schema.text_fields:
                raise ValueError(f"collection {schema.name!r} indexes no text")
            text = " ".join(words)
            clauses.append({"multi_match": {"query": text, "fields": schema.text_fields, "operator": "and"}})
        return {"bool": {"filter": clauses}} if clauses else {"match_all": {}}

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
        schema, index = await self._index(collection_name)
        names = None if fields is None else check_fields(fields)
        order = "asc" if oldest_first else "desc"
        search_after = list[str | int](decode_cursor(cursor)) if cursor is not None else None
        # Source filtering: only the named fields of each body travel (the id, version and time for the cursor).
        includes = None if names is None else ["id", "version", schema.time_field, *(f"doc.{n}" for n in names)]
        found = await self._client.search(
            index=index,
            query=self._query(schema, where),
            sort=[{schema.time_field: order}, {"id": order}],
            size=limit + 1,
            search_after=search_after,
            track_total_hits=False,
            source_includes=includes,
        )
        hits = [hit["_source"] for hit in found["hits"]["hits"]]
        documents = [_document(source, names) for source in hits[:limit]]
        more = len(hits) > limit
        last = hits[limit - 1] if more else None
        return Page(documents, encode_cursor(int(last[schema.time_field]), last["id"]) if last else None)

    async def count(self, collection_name: str, where: DocumentFilter = EVERYTHING) -> int:
        schema, index = await self._index(collection_name)
        counted = await self._client.count(index=index, query=self._query(schema, where))
        return int(counted["count"])

    async def delete_older_than(self, collection_name: str, before: datetime) -> int:
        schema, index = await self._index(collection_name)
        deleted = await self._client.delete_by_query(
            index=index,
            query={"range": {schema.time_field: {"lt": instant_ms(before)}}},
            conflicts="proceed",
            refresh=True,
        )
        return int(deleted["deleted"])

    async def refresh(self, collection_name: str) -> None:
        _, index = await self._index(collection_name)
        await self._client.indices.refresh(index=index)

    async def drop(self) -> None:
        """Delete this store's indices (what a test run wrote on a shared server)."""
        for schema in COLLECTIONS.values():
            await self._client.indices.delete(index=self._index_name(schema), ignore_unavailable=True)
        self._ready.clear()

    async def close(self) -> None:
        await self._client.close()


def _document(source: Mapping[str, Any], fields: Sequence[str] | None = None) -> Document:
    body = dict(source.get("doc") or {})
    if fields is not None:
        body = {name: body.get(name) for name in fields}
    return Document(str(source["id"]), int(source["version"]), body)
