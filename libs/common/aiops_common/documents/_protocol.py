"""The document store protocol: versioned JSON documents in named collections, and what each collection indexes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = [
    "COLLECTIONS",
    "EVERYTHING",
    "Collection",
    "Document",
    "DocumentFilter",
    "DocumentStore",
    "FieldKind",
    "Page",
    "VersionConflictError",
    "check_fields",
    "collection",
    "decode_cursor",
    "encode_cursor",
    "indexed_values",
    "instant_ms",
    "time_ms",
]

FieldKind = Literal["time", "keyword", "keywords", "text"]
"""``time``: an ISO-8601 instant (with its offset), range-queried and sorted on; ``keyword``: one exact string;
``keywords``: a list of exact strings, matched when any equals the value; ``text``: words, matched by free text."""


@dataclass(frozen=True, slots=True)
class Collection:
    """What one collection indexes: its time field (every document has it) and its other fields by kind."""

    name: str
    time_field: str
    fields: Mapping[str, FieldKind]

    def kind(self, field: str) -> FieldKind:
        try:
            return self.fields[field]
        except KeyError:
            raise ValueError(
                f"collection {self.name!r} does not index {field!r}; it indexes {', '.join(self.fields)}"
            ) from None

    @property
    def text_fields(self) -> list[str]:
        return [name for name, kind in self.fields.items() if kind == "text"]


def _collection(name: str, time_field: str, /, **fields: FieldKind) -> Collection:
    return Collection(name, time_field, {time_field: "time", **fields})


#: The one place that says what each collection indexes: the SQLite columns and the Elasticsearch
#: mappings are both made from it. Other fields of a document are kept but not queryable.
COLLECTIONS: Mapping[str, Collection] = {
    c.name: c
    for c in (
        _collection(
            "incidents",
            "started_at",
            services="keywords",
            status="keyword",
            severity="keyword",
            title="text",
            summary="text",
        ),
        _collection("rca_results", "at", incident_id="keyword", services="keywords", status="keyword", summary="text"),
        _collection(
            "executions",
            "started_at",
            incident_id="keyword",
            services="keywords",
            status="keyword",
            action="keyword",
            summary="text",
        ),
        # The action service's runbooks as loaded (one document per runbook id), for the API and the UI.
        _collection("runbooks", "loaded_at", risk="keyword", title="text"),
        _collection(
            "audit",
            "at",
            actor="keyword",
            action="keyword",
            subject_id="keyword",
            services="keywords",
            message="text",
        ),
        _collection("logs", "at", services="keywords", severity="keyword", source="keyword", message="text"),
        # Detection's output, kept for the API and the UI (the feedback store keeps anomalies by id for labels).
        _collection(
            "anomalies",
            "window_end",
            services="keywords",
            severity="keyword",
            series_key="keyword",
            detector="keyword",
            series_name="text",
        ),
        _collection("predictions", "made_at", services="keywords", series_key="keyword", series_name="text"),
        # Operators' runtime configuration, one document per version (``aiops_common.schemas.config``).
        _collection("config", "at", kind="keyword", by="keyword", note="text"),
        # The gateway's API keys: only a hash of each secret is kept.
        _collection("api_keys", "created_at", name="keyword", role="keyword", status="keyword"),
        # Signals Dynamic-X-Y held back (flapping, below their learned X): kept so they can still be found.
        _collection("suppressed", "at", key="keyword", kind="keyword", services="keywords", reason="text"),
    )
}


def collection(name: str) -> Collection:
    try:
        return COLLECTIONS[name]
    except KeyError:
        raise ValueError(f"no document collection {name!r}; known: {', '.join(COLLECTIONS)}") from None


class VersionConflictError(RuntimeError):
    """An upsert named a version that is no longer the stored one: someone else wrote the document since."""

    def __init__(self, collection: str, doc_id: str, expected: int, stored: int) -> None:
        self.collection, self.doc_id, self.expected, self.stored = collection, doc_id, expected, stored
        super().__init__(
            f"{collection}/{doc_id}: the upsert expected version {expected} but version {stored} is stored"
            " (read it again and reapply the change)"
        )


@dataclass(frozen=True, slots=True)
class Document:
    """A stored document: its id, its version (1 for the first write, one more each write) and its JSON body."""

    id: str
    version: int
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a query; ``cursor`` asks for the next page, None when this is the last."""

    documents: list[Document]
    cursor: str | None


@dataclass(frozen=True, slots=True)
class DocumentFilter:
    """Which documents a query or count takes; every condition given must hold.

    ``start``/``end``: the time field in [start, end). ``service``: one of the ``services``. ``text``: every
    word appears in a text field (whole words, any case). ``terms``: other indexed keyword fields, exactly.
    """

    start: datetime | None = None
    end: datetime | None = None
    service: str | None = None
    status: str | None = None
    severity: str | None = None
    text: str | None = None
    terms: tuple[tuple[str, str], ...] = ()

    def keyword_terms(self, schema: Collection) -> list[tuple[str, FieldKind, str]]:
        """(field, kind, value) of every exact condition, each checked against what the collection indexes."""
        named = [("services", self.service), ("status", self.status), ("severity", self.severity)]
        wanted = [(f, v) for f, v in named if v is not None] + list(self.terms)
        out: list[tuple[str, FieldKind, str]] = []
        for field, value in wanted:
            kind = schema.kind(field)
            if kind not in ("keyword", "keywords"):
                raise ValueError(f"{schema.name}.{field} is a {kind} field, not a keyword one")
            out.append((field, kind, value))
        return out

    def words(self) -> list[str]:
        return [w for w in _split_words(self.text or "") if w]

    def range_ms(self) -> tuple[int | None, int | None]:
        return (
            None if self.start is None else instant_ms(self.start),
            None if self.end is None else instant_ms(self.end),
        )


EVERYTHING = DocumentFilter()
"""The filter every document passes."""


def _split_words(text: str) -> list[str]:
    return "".join(c.lower() if c.isalnum() else " " for c in text).split()


def instant_ms(at: datetime) -> int:
    """Milliseconds since the epoch of an aware datetime (a naive one names no instant, and is refused)."""
    if at.tzinfo is None:
        raise ValueError(f"{at!r} has no time zone; document times are instants")
    return int(at.timestamp() * 1000)


def time_ms(schema: Collection, body: Mapping[str, Any]) -> int:
    """The document's time field as milliseconds since the epoch; it must be there, with its offset."""
    value = body.get(schema.time_field)
    if not isinstance(value, str):
        raise ValueError(f"a {schema.name} document needs {schema.time_field!r} as an ISO-8601 string, got {value!r}")
    return instant_ms(datetime.fromisoformat(value))


def indexed_values(schema: Collection, body: Mapping[str, Any]) -> dict[str, Any]:
    """The indexed fields of a body, normalised by kind: time in ms, keyword lists as lists, text as strings."""
    out: dict[str, Any] = {}
    for field, kind in schema.fields.items():
        value = body.get(field)
        if kind == "time":
            out[field] = time_ms(schema, body)
        elif value is None:
            out[field] = None
        elif kind == "keywords":
            out[field] = [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]
        else:
            out[field] = str(value)
    return out


def check_fields(fields: Sequence[str]) -> list[str]:
    """Top-level field names of a projection: identifiers only (they are spelled into queries), at least one."""
    names = list(fields)
    if not names:
        raise ValueError("a projection names at least one field")
    for name in names:
        if not (name.replace("_", "a").isalnum() and name.isascii() and not name[0].isdigit()):
            raise ValueError(f"not a field name a projection can take: {name!r}")
    return names


def encode_cursor(ms: int, doc_id: str) -> str:
    """Where a page ended: the last document's time and id (pages resume after it, so writes between pages
    shift nothing)."""
    return f"{ms}:{doc_id}"


def decode_cursor(cursor: str) -> tuple[int, str]:
    ms, sep, doc_id = cursor.partition(":")
    if not sep or not ms.lstrip("-").isdigit():
        raise ValueError(f"not a document store cursor: {cursor!r}")
    return int(ms), doc_id


@runtime_checkable
class DocumentStore(Protocol):
    """Versioned JSON documents in the collections of :data:`COLLECTIONS`, queried on their indexed fields.

    Written by correlation (incidents), RCA (results), action (executions, audit) and the logs indexer;
    read by the CLI, the gateway and RCA. Queries see writes once :meth:`refresh` returned (at once on SQLite).
    """

    url: str

    async def upsert(
        self, collection: str, doc_id: str, body: Mapping[str, Any], expected_version: int | None = None
    ) -> int:
        """Write a document under its deterministic id; the new version.

        ``expected_version``: the version this write was based on (0: the document must not exist yet);
        when another is stored the write is refused with :class:`VersionConflictError`. None: write whatever
        is stored (a replay of the same state, or a single writer).
        """

    async def upsert_many(self, collection: str, documents: Sequence[tuple[str, Mapping[str, Any]]]) -> int:
        """Write each ``(doc_id, body)`` as :meth:`upsert` does with no expected version; how many were written.

        Every body is checked before anything is written: a bad one raises ``ValueError`` naming its id, and
        nothing of the call is written. The same id twice: the later body is kept and the version counts both
        writes (so the count returned is ``len(documents)``). SQLite writes the whole call in one transaction;
        Elasticsearch in ``_bulk`` requests, where a document it refuses leaves the others written and raises
        one error naming every refused id.
        """

    async def get(self, collection: str, doc_id: str) -> Document | None: ...

    async def query(
        self,
        collection: str,
        where: DocumentFilter = EVERYTHING,
        *,
        oldest_first: bool = False,
        limit: int = 100,
        cursor: str | None = None,
        fields: Sequence[str] | None = None,
    ) -> Page:
        """Documents that match, by their time field (newest first unless ``oldest_first``), then by id.

        ``fields``: only these top-level fields of each body (a field the body lacks is None), so a list of large
        documents reads what it shows, not every member of each; names are identifiers (:func:`check_fields`).
        """

    async def count(self, collection: str, where: DocumentFilter = EVERYTHING) -> int: ...

    async def delete_older_than(self, collection: str, before: datetime) -> int:
        """Delete documents whose time is before ``before`` (a retention bound); how many were deleted."""

    async def refresh(self, collection: str) -> None:
        """Make every write so far visible to queries and counts."""

    async def close(self) -> None: ...
