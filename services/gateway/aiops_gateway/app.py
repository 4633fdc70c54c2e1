"""The gateway's FastAPI application: middleware (request ids, security headers, CORS), refusals as JSON, and the
routers of every part of the API and the UI."""

from __future__ import annotations

import importlib.util
import sqlite3
import time
import uuid

import httpx
import neo4j.exceptions
import structlog
from aiops_common.broker import BrokerUnavailableError
from aiops_common.store_access import StoreUnreachableError
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aiops_gateway import telemetry
from aiops_gateway.context import Gateway
from aiops_gateway.errors import ApiError
from aiops_gateway.routes import (
    anomalies,
    approvals,
    audit,
    config,
    demo,
    events,
    executions,
    feedback,
    incidents,
    ingest,
    metrics,
    runbooks,
    system,
    topology,
)
from aiops_gateway.ui import install_ui

__all__ = ["API_PREFIX", "create_app"]

log = structlog.get_logger(__name__)

API_PREFIX = "/api/v1"

#: Sent with every response: no sniffing, no framing by other sites, no referrer leaks, scripts only from here.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
}


def _unavailable_kinds() -> tuple[type[Exception], ...]:
    """What a store or the broker raises when it cannot be reached (answered 503 with Retry-After, not 500):
    the drivers' own connection errors too, each where its client is installed."""
    kinds: list[type[Exception]] = [
        BrokerUnavailableError,
        StoreUnreachableError,
        OSError,
        TimeoutError,
        sqlite3.OperationalError,
        neo4j.exceptions.ServiceUnavailable,
        neo4j.exceptions.SessionExpired,
        httpx.TransportError,  # the Prometheus-API time-series stores
    ]
    if importlib.util.find_spec("elastic_transport") is not None:
        import elastic_transport

        kinds += [elastic_transport.ConnectionError, elastic_transport.ConnectionTimeout]
    return tuple(kinds)


_UNAVAILABLE = _unavailable_kinds()


def _error(request: Request, status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    request_id = getattr(request.state, "request_id", "")
    return JSONResponse({"error": message, "request_id": request_id}, status, headers)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:10]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "the request does not match the schema"


def create_app(gw: Gateway) -> FastAPI:
    settings = gw.settings
    app = FastAPI(
        title="AIOps platform API",
        description=(
            "Incidents, root causes, anomalies, metrics, topology, configuration and automation. Authenticate with "
            "an API key (`Authorization: Bearer aiops_…` or `X-API-Key`) or an OIDC bearer token."
        ),
        version="1.0",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.state.gateway = gw

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        return _error(request, exc.status, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        return _error(request, 422, _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = exc.detail if isinstance(exc.detail, str) else "refused"
        return _error(request, exc.status_code, message, dict(exc.headers or {}))

    async def unavailable(request: Request, exc: Exception) -> Response:
        log.warning("backend unavailable", error=f"{type(exc).__name__}: {exc}", path=request.url.path)
        retry = {"Retry-After": "5"}
        return _error(request, 503, f"a store or the broker is unavailable ({type(exc).__name__}); retry", retry)

    # Handled inside the middleware (each class by name; ``Exception`` alone is handled outside it), so a 503 gets
    # its request id header, the security headers and its place in the request metrics.
    for kind in _UNAVAILABLE:
        app.add_exception_handler(kind, unavailable)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error", path=request.url.path)
        return _error(request, 500, "internal error; the gateway's log has the details under this request id")

    app.add_middleware(RequestContext)

    if settings.gateway_cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.gateway_cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining"],
            max_age=600,
        )

    app.include_router(system.router)
    for module in (incidents, anomalies, metrics, topology, config, runbooks, feedback, audit, ingest, events):
        app.include_router(module.router, prefix=API_PREFIX)
    for module in (executions, approvals):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(demo.router, prefix=API_PREFIX)
    install_ui(app)
    return app


class RequestContext:
    """Request ids, security headers and request metrics around every answer.

    A plain ASGI middleware: Starlette's ``BaseHTTPMiddleware`` runs each request through an extra task and
    stream, a large share of the cost of the API's most frequent answers.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), "")
        request_id = given if given and len(given) <= 128 and given.isprintable() else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers["X-Request-ID"] = request_id
                for name, value in SECURITY_HEADERS.items():
                    if name not in headers:
                        headers.append(name, value)
            await send(message)

        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            structlog.contextvars.unbind_contextvars("request_id")
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            telemetry.REQUESTS.labels(scope["method"], template, str(status)).inc()
            telemetry.LATENCY.labels(scope["method"], template).observe(time.perf_counter() - started)
