"""``python -m benchmarks.gateway.plain_json worker gateway``: the ``aiops`` command with the Elasticsearch client
sending and accepting plain ``application/json``, for OpenSearch-compatible servers such as osmem-server.

The client always sends Elasticsearch's versioned media type (``application/vnd.elasticsearch+json;
compatible-with=N``), which osmem-server refuses with 406, and a store opened by URL cannot be given another
transport node: the document store's contract suite passes ``aiops_common.testing.plain_json.PlainJsonNode`` for the
same reason. Here every ``ElasticsearchDocumentStore`` of the process gets that node, and nothing else changes.
"""

from __future__ import annotations

import sys
from typing import Any

from aiops_common.documents import elasticsearch as es_backend
from aiops_common.testing.plain_json import PlainJsonNode

__all__ = ["install"]


def install() -> None:
    """Every Elasticsearch document store made from now on in this process uses :class:`PlainJsonNode`."""
    store = es_backend.ElasticsearchDocumentStore
    original = store.__init__
    if getattr(original, "plain_json", False):
        return

    def init(self: es_backend.ElasticsearchDocumentStore, url: str, **options: Any) -> None:
        options.setdefault("node_class", PlainJsonNode)
        original(self, url, **options)

    init.plain_json = True  # type: ignore[attr-defined]
    store.__init__ = init  # type: ignore[method-assign]


if __name__ == "__main__":
    install()
    from aiops_cli.main import app

    sys.argv[0] = "aiops"
    app()
