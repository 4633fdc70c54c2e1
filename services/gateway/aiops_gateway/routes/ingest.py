"""``/api/v1``: the ingestion service's write routes, reachable through the gateway under its authentication.

The body is forwarded as sent (JSON, or remote write's snappy protobuf, with its Content-Type and
Content-Encoding) to ``AIOPS_GATEWAY_INGEST_URL``; the ingestion service's answer comes back as it is, so its
retry semantics hold: 2xx only once the broker acknowledged, 4xx for bad input, 503 with Retry-After.
"""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import structlog
from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict

from aiops_gateway.auth import Principal, Role, require
from aiops_gateway.context import gateway
from aiops_gateway.errors import ERROR_RESPONSES, ApiError, ErrorBody

__all__ = ["FORWARDED", "router"]

log = structlog.get_logger(__name__)

router = APIRouter(
    tags=["ingestion"], responses={**ERROR_RESPONSES, 413: {"model": ErrorBody, "description": "Too large"}}
)


class Accepted(BaseModel):
    """How many records the ingestion service accepted (and, for a deployment event, its id)."""

    model_config = ConfigDict(extra="allow")
    accepted: int | None = None


_JSON_BODY = {"application/json": {"schema": {"type": "object"}}}
_PROTOBUF_BODY = {"application/x-protobuf": {"schema": {"type": "string", "format": "binary"}}}

#: path -> (summary, request body content, success status)
FORWARDED: dict[str, tuple[str, dict[str, Any], int]] = {
    "/metrics/write": ("Metric samples as JSON (see docs/ingestion.md)", _JSON_BODY, 200),
    "/logs/write": ("Log records as JSON", _JSON_BODY, 200),
    "/alerts/ingest": ("An Alertmanager webhook (version 4)", _JSON_BODY, 200),
    "/events/deployment": ("One deployment (change) event", _JSON_BODY, 202),
    "/write": ("Prometheus remote write 1.0 or 2.0 (snappy protobuf)", _PROTOBUF_BODY, 204),
}

_PASSED_HEADERS = ("content-type", "content-encoding", "x-prometheus-remote-write-version")
_RETURNED_HEADERS = ("content-type", "retry-after", "x-prometheus-remote-write-samples-written")


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"the body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _route(path: str, summary: str, content: dict[str, Any], status: int) -> None:
    async def forward(request: Request, principal: Annotated[Principal, Depends(require(Role.OPERATOR))]) -> Response:
        gw = gateway(request)
        settings = gw.settings
        body = await _body(request, settings.gateway_max_body_bytes)
        headers = {name: value for name in _PASSED_HEADERS if (value := request.headers.get(name))}
        headers["X-Request-ID"] = getattr(request.state, "request_id", "")
        if settings.gateway_ingest_token is not None:
            headers["Authorization"] = f"Bearer {settings.gateway_ingest_token.get_secret_value()}"
        url = f"{settings.gateway_ingest_url.rstrip('/')}/api/v1{path}"
        try:
            answer = await gw.http.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            log.warning("ingestion unreachable", url=url, error=f"{type(exc).__name__}: {exc}")
            raise ApiError(503, "the ingestion service is unreachable; retry later", {"Retry-After": "5"}) from None
        if answer.status_code >= 500 and answer.status_code != 503:
            log.error("ingestion failed", url=url, status=answer.status_code)
            raise ApiError(
                503, f"the ingestion service answered {answer.status_code}; retry later", {"Retry-After": "5"}
            )
        returned = {name: value for name in _RETURNED_HEADERS if (value := answer.headers.get(name))}
        log.info("forwarded to ingestion", path=path, status=answer.status_code, bytes=len(body), by=principal.name)
        return Response(answer.content, answer.status_code, returned)

    success: dict[int | str, dict[str, Any]] = {
        status: {"model": Accepted, "description": "Accepted: the broker acknowledged every record"}
        if status != 204
        else {"description": "Accepted: the broker acknowledged every sample"}
    }
    router.add_api_route(
        path,
        forward,
        methods=["POST"],
        summary=f"{summary}, forwarded to ingestion",
        status_code=status,
        response_class=Response,
        responses=success,
        openapi_extra={"requestBody": {"required": True, "content": content}},
        name=f"ingest{path.replace('/', '_')}",
    )


for _path, (_summary, _content, _status) in FORWARDED.items():
    _route(_path, _summary, _content, _status)
