"""The document store: versioned JSON documents (incidents, RCA results, executions, audit, logs), one protocol,
one implementation per URL scheme.

>>> DOCUMENT_BACKENDS.schemes
['elasticsearch', 'elasticsearchs', 'sqlite']
"""

from __future__ import annotations

from aiops_common.documents._protocol import (
    COLLECTIONS,
    EVERYTHING,
    Collection,
    Document,
    DocumentFilter,
    DocumentStore,
    FieldKind,
    Page,
    VersionConflictError,
)
from aiops_common.registry import BackendRegistry

__all__ = [
    "COLLECTIONS",
    "DOCUMENT_BACKENDS",
    "EVERYTHING",
    "Collection",
    "Document",
    "DocumentFilter",
    "DocumentStore",
    "FieldKind",
    "Page",
    "VersionConflictError",
    "open_document_store",
]

DOCUMENT_BACKENDS: BackendRegistry[DocumentStore] = BackendRegistry("document store")
DOCUMENT_BACKENDS.register("sqlite", "aiops_common.documents.sqlite:SqliteDocumentStore")
DOCUMENT_BACKENDS.register("elasticsearch", "aiops_common.documents.elasticsearch:ElasticsearchDocumentStore")
DOCUMENT_BACKENDS.register("elasticsearchs", "aiops_common.documents.elasticsearch:ElasticsearchDocumentStore")


def open_document_store(url: str) -> DocumentStore:
    """The store a URL names, e.g. ``sqlite:///.aiops/documents.sqlite`` or ``elasticsearch://es:9200``."""
    return DOCUMENT_BACKENDS.by_url(url)
