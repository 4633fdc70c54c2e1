"""The OTLP/gRPC receiver: metrics, logs and traces services on one grpc.aio server."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
import structlog
from aiops_common.broker import BrokerUnavailableError, Publisher
from aiops_common.topics import Topics
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from aiops_ingestion import normalize as nz
from aiops_ingestion import telemetry
from aiops_ingestion.publishing import RecordPublisher
from aiops_ingestion.settings import IngestionSettings

__all__ = ["create_grpc_server"]

log = structlog.get_logger(__name__)

R = TypeVar("R")


async def _guard(name: str, context: grpc.aio.ServicerContext, work: Callable[[], Awaitable[R]]) -> R:
    """Map bad input to INVALID_ARGUMENT (not retried) and a broker outage to UNAVAILABLE (retried)."""
    try:
        result = await work()
    except nz.InvalidPayloadError as exc:
        telemetry.REJECTED.labels(name, "grpc_invalid_argument").inc()
        telemetry.REQUESTS.labels(name, "INVALID_ARGUMENT").inc()
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
    except BrokerUnavailableError as exc:
        telemetry.UNAVAILABLE.inc()
        telemetry.REQUESTS.labels(name, "UNAVAILABLE").inc()
        log.warning("broker unavailable", endpoint=name, error=str(exc))
        await context.abort(grpc.StatusCode.UNAVAILABLE, "the message broker is unavailable; retry later")
    telemetry.REQUESTS.labels(name, "OK").inc()
    return result


class _Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(
        self, records: RecordPublisher, limits: nz.Limits, enricher: nz.Enricher, cache: nz.SeriesCache
    ) -> None:
        self.records, self.limits, self.enricher, self.cache = records, limits, enricher, cache

    async def Export(  # name fixed by the OTLP service definition
        self, request: Any, context: grpc.aio.ServicerContext
    ) -> metrics_service_pb2.ExportMetricsServiceResponse:
        async def work() -> metrics_service_pb2.ExportMetricsServiceResponse:
            partitions = Topics.METRICS_RAW.partitions
            builder = nz.normalize_otlp_metrics(request, self.limits, self.enricher, partitions, cache=self.cache)
            await self.records.metrics(builder, "otlp_grpc")
            return metrics_service_pb2.ExportMetricsServiceResponse()

        return await _guard("grpc:metrics", context, work)

    def add_to(self, server: grpc.aio.Server) -> None:
        """``add_MetricsServiceServicer_to_server``, with requests read as an ``ExportMetricsView``.

        The view is the same message on the wire; it leaves number points as bytes
        for the series cache (see ``normalize_otlp_metrics``).
        """
        handler = grpc.unary_unary_rpc_method_handler(
            self.Export,
            request_deserializer=nz.ExportMetricsView.FromString,
            response_serializer=metrics_service_pb2.ExportMetricsServiceResponse.SerializeToString,
        )
        service = metrics_service_pb2.DESCRIPTOR.services_by_name["MetricsService"].full_name
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, {"Export": handler}),))


class _Logs(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, records: RecordPublisher, limits: nz.Limits, enricher: nz.Enricher) -> None:
        self.records, self.limits, self.enricher = records, limits, enricher

    async def Export(  # name fixed by the OTLP service definition
        self, request: logs_service_pb2.ExportLogsServiceRequest, context: grpc.aio.ServicerContext
    ) -> logs_service_pb2.ExportLogsServiceResponse:
        async def work() -> logs_service_pb2.ExportLogsServiceResponse:
            await self.records.logs(nz.normalize_otlp_logs(request, self.limits, self.enricher), "otlp_grpc")
            return logs_service_pb2.ExportLogsServiceResponse()

        return await _guard("grpc:logs", context, work)


class _Traces(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, records: RecordPublisher, limits: nz.Limits, enricher: nz.Enricher) -> None:
        self.records, self.limits, self.enricher = records, limits, enricher

    async def Export(  # name fixed by the OTLP service definition
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.aio.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        async def work() -> trace_service_pb2.ExportTraceServiceResponse:
            await self.records.spans(nz.normalize_otlp_traces(request, self.limits, self.enricher), "otlp_grpc")
            return trace_service_pb2.ExportTraceServiceResponse()

        return await _guard("grpc:traces", context, work)


def create_grpc_server(
    settings: IngestionSettings, publisher: Publisher, series_cache: nz.SeriesCache | None = None
) -> grpc.aio.Server:
    """A grpc.aio server with the three OTLP services bound to the configured address (not started).

    ``series_cache`` is shared with the HTTP API when given (one per process).
    """
    limits = nz.Limits.from_settings(settings)
    enricher = nz.Enricher.from_settings(settings)
    if series_cache is None:
        series_cache = nz.SeriesCache(settings.ingest_series_cache_size)
    records = RecordPublisher(publisher)
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", settings.ingest_max_decompressed_bytes),
            ("grpc.max_send_message_length", 4 * 1024 * 1024),
        ],
    )
    _Metrics(records, limits, enricher, series_cache).add_to(server)
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(_Logs(records, limits, enricher), server)
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Traces(records, limits, enricher), server)
    address = f"{settings.ingest_grpc_host}:{settings.ingest_grpc_port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as exc:  # grpcio raises instead of returning 0 in recent versions
        raise OSError(f"cannot listen for OTLP gRPC on {address}: {exc}") from None
    if bound == 0:
        raise OSError(f"cannot listen for OTLP gRPC on {address}")
    return server
