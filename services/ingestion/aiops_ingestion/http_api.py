"""The ingestion HTTP API: OTLP/HTTP, Prometheus remote write, Alertmanager webhooks and JSON APIs.

Status codes follow the senders' retry rules: 2xx only once the broker has
acknowledged the data, 4xx (never retried) for bad input with a message, and
503 with ``Retry-After`` when the broker is unavailable (Prometheus and OTLP
exporters retry those). Refusals are ``{"error": ...}`` JSON, except on the OTLP
paths, which answer with a ``google.rpc.Status`` in the request's encoding as the
OTLP specification asks.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiops_common.broker import BrokerUnavailableError, Publisher
from aiops_common.schemas import MetricBatchBuilder
from aiops_common.topics import Topics
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc import code_pb2, status_pb2
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from aiops_ingestion import normalize as nz
from aiops_ingestion import telemetry
from aiops_ingestion.http_body import decode_content_encoding, read_body
from aiops_ingestion.http_docs import binary_body, install_docs, json_body, otlp_body
from aiops_ingestion.otlp_signals import SIGNALS, OtlpSignal
from aiops_ingestion.pipeline import Pipeline
from aiops_ingestion.settings import IngestionSettings

__all__ = ["create_http_app"]

log = structlog.get_logger(__name__)

Handler = Callable[[Request], Awaitable[Response]]

_PROTOBUF = "application/x-protobuf"
_PROTOBUF_TYPES = frozenset({_PROTOBUF, "application/protobuf"})
# The google.rpc.Code of an OTLP refusal, by HTTP status (the HTTP status is what senders act on).
_RPC_CODES = {413: code_pb2.RESOURCE_EXHAUSTED, 503: code_pb2.UNAVAILABLE}
_MESSAGES: dict[str, type[BaseModel]] = {
    "/api/v1/alerts/ingest": nz.AlertmanagerWebhook,
    "/api/v1/metrics/write": nz.MetricsWrite,
    "/api/v1/logs/write": nz.LogsWrite,
    "/api/v1/events/deployment": nz.DeploymentEvent,
}


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _otlp_refusal(request: Request, message: str, status_code: int, headers: dict[str, str] | None) -> Response:
    """A ``google.rpc.Status``: binary for a protobuf request, else OTLP/JSON (also for an unknown Content-Type)."""
    status = status_pb2.Status(code=_RPC_CODES.get(status_code, code_pb2.INVALID_ARGUMENT), message=message)
    if _media_type(request) in _PROTOBUF_TYPES:
        return Response(status.SerializeToString(), status_code, headers, media_type=_PROTOBUF)
    return JSONResponse(json_format.MessageToDict(status), status_code, headers)


def create_http_app(
    settings: IngestionSettings, publisher: Publisher, series_cache: nz.SeriesCache | None = None
) -> FastAPI:
    """The HTTP API; ``series_cache`` is shared with the gRPC server when given (one per process)."""
    pipeline = Pipeline.from_settings(settings, publisher, series_cache)
    limits, enricher, series_cache = pipeline.limits, pipeline.enricher, pipeline.series_cache
    records = pipeline.records
    metric_partitions = Topics.METRICS_RAW.partitions
    app = FastAPI(
        title="AIOps ingestion",
        description="Receives OTLP, Prometheus remote write, Alertmanager webhooks and JSON telemetry.",
        version="1.0",
        docs_url=None,  # served by install_docs from local assets, not a CDN
        redoc_url=None,
    )

    async def body_of(request: Request) -> bytes:
        raw = await read_body(request, settings.ingest_max_body_bytes)
        return decode_content_encoding(
            raw, request.headers.get("content-encoding"), settings.ingest_max_decompressed_bytes
        )

    def endpoint(path: str, handler: Handler, request_body: dict[str, Any], *, otlp: bool = False) -> None:
        """A POST route whose raw body ``handler`` reads; ``request_body`` describes it in the OpenAPI document."""

        def refusal(
            request: Request, message: str, status_code: int, headers: dict[str, str] | None = None
        ) -> Response:
            if otlp:
                return _otlp_refusal(request, message, status_code, headers)
            return JSONResponse({"error": message}, status_code, headers)

        async def guarded(request: Request) -> Response:
            try:
                response = await handler(request)
            except nz.InvalidPayloadError as exc:
                telemetry.REJECTED.labels(path, str(exc.status_code)).inc()
                response = refusal(request, str(exc), exc.status_code)
            except BrokerUnavailableError as exc:
                telemetry.UNAVAILABLE.inc()
                log.warning("broker unavailable", endpoint=path, error=str(exc))
                retry = {"Retry-After": str(settings.ingest_retry_after_s)}
                response = refusal(request, "the message broker is unavailable; retry later", 503, retry)
            telemetry.REQUESTS.labels(path, str(response.status_code)).inc()
            return response

        app.add_api_route(
            path,
            guarded,
            methods=["POST"],
            include_in_schema=True,
            name=path,
            openapi_extra={"requestBody": request_body},
        )

    # OTLP/HTTP ------------------------------------------------------------------
    def otlp(signal: OtlpSignal[Any, Any, Message]) -> Handler:
        async def export(request: Request) -> Response:
            media = _media_type(request)
            message = signal.parse_http(await body_of(request), media)
            response = await signal.export(pipeline, message, "otlp", signal.http_path)
            if media == "application/json":
                return JSONResponse(json_format.MessageToDict(response))
            return Response(response.SerializeToString(), media_type=_PROTOBUF)

        return export

    # Prometheus remote write 1.0 and 2.0 (by Content-Type; docs/ingestion.md) ------
    async def remote_write(request: Request) -> Response:
        headers = request.headers
        version = nz.remote_write_version(headers.get("content-type"), headers.get("content-encoding"))
        raw = await read_body(request, settings.ingest_max_body_bytes)
        counts = nz.RemoteWriteCounts()
        if version == "2.0":
            parsed = nz.parse_remote_write_v2(raw, limits)
            normalize = nz.normalize_remote_write_v2
        else:
            parsed = nz.parse_remote_write(raw, limits)
            normalize = nz.normalize_remote_write
        builder = normalize(parsed, limits, enricher, metric_partitions, cache=series_cache, counts=counts)
        await records.metrics(builder, "remote_write")
        return Response(status_code=204, headers=counts.headers())

    # Alertmanager, JSON APIs ------------------------------------------------------
    async def alertmanager(request: Request) -> Response:
        alerts = nz.parse_alertmanager_webhook(
            await body_of(request), limits, content_type=request.headers.get("content-type")
        )
        await records.alerts(alerts, "alertmanager")
        return JSONResponse({"accepted": len(alerts)})

    async def metrics_write(request: Request) -> Response:
        builder: MetricBatchBuilder = nz.parse_metrics_write(
            await body_of(request),
            limits,
            enricher,
            metric_partitions,
            content_type=request.headers.get("content-type"),
        )
        count = await records.metrics(builder, "json")
        return JSONResponse({"accepted": count})

    async def logs_write(request: Request) -> Response:
        logs = nz.parse_logs_write(
            await body_of(request), limits, enricher, content_type=request.headers.get("content-type")
        )
        return JSONResponse({"accepted": await records.logs(logs, "json")})

    async def deployment_event(request: Request) -> Response:
        event = nz.parse_deployment_event(
            await body_of(request), limits, content_type=request.headers.get("content-type")
        )
        await records.change(event, "json")
        return JSONResponse({"accepted": 1, "id": event.id}, status_code=202)

    for signal in SIGNALS:
        endpoint(signal.http_path, otlp(signal), otlp_body(signal.request_message), otlp=True)
    endpoint(
        "/api/v1/write",
        remote_write,
        binary_body(
            "A snappy-compressed Prometheus remote write request: 1.0 (`prometheus.WriteRequest`), or 2.0 with "
            "Content-Type `application/x-protobuf;proto=io.prometheus.write.v2.Request`."
        ),
    )
    json_routes: list[tuple[str, Handler, str]] = [
        ("/api/v1/alerts/ingest", alertmanager, "An Alertmanager webhook (version 4)."),
        ("/api/v1/metrics/write", metrics_write, "Metric samples; names and labels must be valid Prometheus names."),
        ("/api/v1/logs/write", logs_write, "Log records."),
        ("/api/v1/events/deployment", deployment_event, "One deployment (change) event."),
    ]
    for path, handler, description in json_routes:
        endpoint(path, handler, json_body(_MESSAGES[path], description + " Content-Type: application/json."))
    install_docs(app, _MESSAGES.values())

    # Own observability -----------------------------------------------------------
    started = time.time()

    @app.get("/health")
    async def health() -> dict[str, object]:
        return {"status": "ok", "uptime_s": round(time.time() - started, 1)}

    @app.get("/ready")
    async def ready() -> Response:
        if await publisher.ping():
            return JSONResponse({"status": "ready", "broker": "reachable"})
        return JSONResponse(
            {"status": "not ready", "broker": "unreachable"},
            status_code=503,
            headers={"Retry-After": str(settings.ingest_retry_after_s)},
        )

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
