"""The OTLP/gRPC receiver: metrics, logs and traces services on one grpc.aio server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import structlog
from aiops_common.broker import BrokerUnavailableError, Publisher
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from aiops_ingestion import normalize as nz
from aiops_ingestion import otlp_signals, telemetry
from aiops_ingestion.otlp_signals import OtlpSignal
from aiops_ingestion.pipeline import Pipeline
from aiops_ingestion.settings import IngestionSettings

__all__ = ["create_grpc_server"]

log = structlog.get_logger(__name__)


class _ExportService:
    """One OTLP service: its ``Export`` is all that the ``add_*ServiceServicer_to_server`` functions call."""

    def __init__(self, signal: OtlpSignal[Any, Any, Message], pipeline: Pipeline) -> None:
        self.signal, self.pipeline = signal, pipeline
        self.endpoint = f"grpc:{signal.name}"

    async def Export(  # name fixed by the OTLP service definition
        self, request: Any, context: grpc.aio.ServicerContext
    ) -> Message:
        """Answer OK, with ``partial_success`` when some items were invalid; INVALID_ARGUMENT (not retried)
        when the request holds no valid item; UNAVAILABLE (retried) during a broker outage."""
        try:
            response = await self.signal.export(self.pipeline, request, "otlp_grpc", self.endpoint)
        except nz.InvalidPayloadError as exc:
            telemetry.REJECTED.labels(self.endpoint, "grpc_invalid_argument").inc()
            telemetry.REQUESTS.labels(self.endpoint, "INVALID_ARGUMENT").inc()
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except BrokerUnavailableError as exc:
            telemetry.UNAVAILABLE.inc()
            telemetry.REQUESTS.labels(self.endpoint, "UNAVAILABLE").inc()
            log.warning("broker unavailable", endpoint=self.endpoint, error=str(exc))
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the message broker is unavailable; retry later")
        telemetry.REQUESTS.labels(self.endpoint, "OK").inc()
        return response


def _add_metrics_service(servicer: _ExportService, server: grpc.aio.Server) -> None:
    """``add_MetricsServiceServicer_to_server``, with requests read as an ``ExportMetricsView``.

    The view is the same message on the wire; it leaves number points as bytes
    for the series cache (see ``normalize_otlp_metrics``).
    """
    handler = grpc.unary_unary_rpc_method_handler(
        servicer.Export,
        request_deserializer=nz.ExportMetricsView.FromString,
        response_serializer=metrics_service_pb2.ExportMetricsServiceResponse.SerializeToString,
    )
    service = metrics_service_pb2.DESCRIPTOR.services_by_name["MetricsService"].full_name
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, {"Export": handler}),))


# Each signal and the function that registers its service (the generated one for logs and traces).
_SERVICES: tuple[tuple[OtlpSignal[Any, Any, Message], Callable[[_ExportService, grpc.aio.Server], None]], ...] = (
    (otlp_signals.METRICS, _add_metrics_service),
    (otlp_signals.LOGS, logs_service_pb2_grpc.add_LogsServiceServicer_to_server),
    (otlp_signals.TRACES, trace_service_pb2_grpc.add_TraceServiceServicer_to_server),
)


def create_grpc_server(
    settings: IngestionSettings, publisher: Publisher, series_cache: nz.SeriesCache | None = None
) -> grpc.aio.Server:
    """A grpc.aio server with the three OTLP services bound to the configured address (not started).

    ``series_cache`` is shared with the HTTP API when given (one per process).
    """
    pipeline = Pipeline.from_settings(settings, publisher, series_cache)
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", settings.ingest_max_decompressed_bytes),
            ("grpc.max_send_message_length", 4 * 1024 * 1024),
        ],
    )
    for signal, add_to_server in _SERVICES:
        add_to_server(_ExportService(signal, pipeline), server)
    address = f"{settings.ingest_grpc_host}:{settings.ingest_grpc_port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as exc:  # grpcio raises instead of returning 0 in recent versions
        raise OSError(f"cannot listen for OTLP gRPC on {address}: {exc}") from None
    if bound == 0:
        raise OSError(f"cannot listen for OTLP gRPC on {address}")
    return server
