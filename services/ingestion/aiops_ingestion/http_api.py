"""The ingestion HTTP API: OTLP/HTTP, Prometheus remote write, Alertmanager webhooks and JSON APIs.

Status codes follow the senders' retry rules: 2xx only once the broker has
acknowledged the data, 4xx (never retried) for bad input with a JSON message, and
503 with ``Retry-After`` when the broker is unavailable (Prometheus and OTLP
exporters retry those).
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
from google.protobuf.message import Message
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from aiops_ingestion import normalize as nz
from aiops_ingestion import telemetry
from aiops_ingestion.http_body import decode_content_encoding, read_body
from aiops_ingestion.otlp_signals import SIGNALS, OtlpSignal
from aiops_ingestion.pipeline import Pipeline
from aiops_ingestion.settings import IngestionSettings

__all__ = ["create_http_app"]

log = structlog.get_logger(__name__)

Handler = Callable[[Request], Awaitable[Response]]

_PROTOBUF = "application/x-protobuf"


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


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
    )

    async def body_of(request: Request) -> bytes:
        raw = await read_body(request, settings.ingest_max_body_bytes)
        return decode_content_encoding(
            raw, request.headers.get("content-encoding"), settings.ingest_max_decompressed_bytes
        )

    def endpoint(path: str, handler: Handler) -> None:
        async def guarded(request: Request) -> Response:
            try:
                response = await handler(request)
            except nz.InvalidPayloadError as exc:
                telemetry.REJECTED.labels(path, str(exc.status_code)).inc()
                response = JSONResponse({"error": str(exc)}, status_code=exc.status_code)
            except BrokerUnavailableError as exc:
                telemetry.UNAVAILABLE.inc()
                log.warning("broker unavailable", endpoint=path, error=str(exc))
                response = JSONResponse(
                    {"error": "the message broker is unavailable; retry later"},
                    status_code=503,
                    headers={"Retry-After": str(settings.ingest_retry_after_s)},
                )
            telemetry.REQUESTS.labels(path, str(response.status_code)).inc()
            return response

        app.add_api_route(path, guarded, methods=["POST"], include_in_schema=True, name=path)

    # OTLP/HTTP ------------------------------------------------------------------
    def otlp(signal: OtlpSignal[Any, Any, Message]) -> Handler:
        async def export(request: Request) -> Response:
            media = _media_type(request)
            response = await signal.export(pipeline, signal.parse_http(await body_of(request), media), "otlp")
            if media == "application/json":
                return Response(b"{}", media_type="application/json")
            return Response(response.SerializeToString(), media_type=_PROTOBUF)

        return export

    # Prometheus remote write 1.0 -----------------------------------------------
    async def remote_write(request: Request) -> Response:
        media = _media_type(request)
        if media not in ("", _PROTOBUF):
            raise nz.InvalidPayloadError(f"remote write needs Content-Type {_PROTOBUF}, got {media!r}", 415)
        encoding = request.headers.get("content-encoding", "snappy").strip().lower()
        if encoding != "snappy":
            raise nz.InvalidPayloadError(f"remote write needs Content-Encoding snappy, got {encoding!r}", 415)
        raw = await read_body(request, settings.ingest_max_body_bytes)
        request_message = nz.parse_remote_write(raw, limits)
        builder = nz.normalize_remote_write(request_message, limits, enricher, metric_partitions, cache=series_cache)
        await records.metrics(builder, "remote_write")
        return Response(status_code=204)

    # Alertmanager, JSON APIs ------------------------------------------------------
    async def alertmanager(request: Request) -> Response:
        alerts = nz.parse_alertmanager_webhook(
            await body_of(request), limits, content_type=request.headers.get("content-type")
        )
        await records.alerts(alerts, "alertmanager")
        return JSONResponse({"accepted": len(alerts)})

    async def metrics_write(request: Request) -> Response:
        builder: MetricBatchBuilder = nz.parse_metrics_write(
            await body_of(request), limits, enricher, metric_partitions
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
        endpoint(signal.http_path, otlp(signal))
    endpoint("/api/v1/write", remote_write)
    endpoint("/api/v1/alerts/ingest", alertmanager)
    endpoint("/api/v1/metrics/write", metrics_write)
    endpoint("/api/v1/logs/write", logs_write)
    endpoint("/api/v1/events/deployment", deployment_event)

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
