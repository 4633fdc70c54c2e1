"""Elasticsearch as the document store (``elasticsearch://host:port[/prefix]``, ``elasticsearchs://`` for TLS)."""

from __future__ import annotations

from collections.abc import Mapping
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
    collection,
    decode_cursor,
    encode_cursor,
    indexed_values,
    instant_ms,
)
from aiops_common.extras import requires_extra

with requires_extra("elasticsearch", "the Elasticsearch document store"):
    from elasticsearch import AsyncElasticsearch, BadRequestError, ConflictError, NotFoundError

__all__ = ["ElasticsearchDocumentStore", "mapping"]

_TYPES = {
    "time": {"type": "date", "format": "epoch_millis"},
    "keyword": {"type": "keyword"},
    "keywords": {"type": "keyword"},
    "text": {"type": "text"},
}


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
        parts = urlsplit(url)
        if not parts.hostname:
            raise ValueError(f"document store URL names no host: {url!r}")
        self.url = url
        scheme = "https" if parts.scheme.lower() == "elasticsearchs" else "http"
        path = parts.path.strip("/")
        self.index_prefix = f"{path}-" if path else "aiops-"
        options: dict[str, Any] = dict(client_options)
        if parts.username is not None:
            options.setdefault("basic_auth", (unquote(parts.username), unquote(parts.password or "")))
        self._client = AsyncElasticsearch(f"{scheme}://{parts.hostname}:{parts.port or 9200}", **options)
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
    ) -> Page:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        schema, index = await self._index(collection_name)
        order = "asc" if oldest_first else "desc"
        search_after = list[str | int](decode_cursor(cursor)) if cursor is not None else None
        found = await self._client.search(
            index=index,
            query=self._query(schema, where),
            sort=[{schema.time_field: order}, {"id": order}],
            size=limit + 1,
            search_after=search_after,
            track_total_hits=False,
        )
        hits = [hit["_source"] for hit in found["hits"]["hits"]]
        documents = [_document(source) for source in hits[:limit]]
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


def _document(source: Mapping[str, Any]) -> Document:
    return Document(str(source["id"]), int(source["version"]), dict(source["doc"]))
