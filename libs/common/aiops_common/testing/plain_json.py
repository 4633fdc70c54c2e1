"""The Elasticsearch client speaking plain JSON, for OpenSearch-compatible servers such as osmem-server.

The client always sends Elasticsearch's versioned media type (``application/vnd.elasticsearch+json;
compatible-with=N``), which osmem-server refuses with 406. Used by the document store's contract suite and the
gateway benchmark; not by the platform (a real Elasticsearch takes the versioned type).
"""

from __future__ import annotations

from elastic_transport import AiohttpHttpNode, HttpHeaders
from elastic_transport._models import DEFAULT, DefaultType
from elastic_transport._node import NodeApiResponse

__all__ = ["PlainJsonNode"]


class PlainJsonNode(AiohttpHttpNode):
    """The client's versioned media type sent and accepted as plain ``application/json``."""

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
