"""``python -m benchmarks.gateway.plain_json worker gateway``: the ``aiops`` command with the Elasticsearch client
sending and accepting plain ``application/json``, for OpenSearch-compatible servers such as osmem-server.

The client always sends Elasticsearch's versioned media type (``application/vnd.elasticsearch+json;
compatible-with=N``), which osmem-server refuses with 406, and a store opened by URL cannot be given another
transport node: the document store's contract suite passes its own node class for the same reason. Here every
``ElasticsearchDocumentStore`` of the process gets that node, and nothing else changes.
"""

from __future__ import annotations

import sys
from typing import Any

from aiops_common.documents import elasticsearch as es_backend
from elastic_transport import AiohttpHttpNode, HttpHeaders
from elastic_transport._models import DEFAULT, DefaultType
from elastic_transport._node import NodeApiResponse

__all__ = ["PlainJsonNode"]


class PlainJsonNode(AiohttpHttpNode):
    """The client's versioned media type sent and accepted as plain JSON."""

    # The client's async nodes override the sync base's method with a coroutine; so does this one.
    async def perform_request(  # type: ignore[override]
        self,
        method: str,
        target: str,
        body: bytes | None = None,
        headers: HttpHeaders | None = None,
        request_timeout: DefaultType | float | None = DEFAULT,
    ) -> NodeApiResponse:
        if headers is not None:
            headers = headers.copy()
            for name in ("accept", "content-type"):
                if "vnd.elasticsearch" in (headers.get(name) or ""):
                    headers[name] = "application/json"
        return await super().perform_request(method, target, body, headers, request_timeout)


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
