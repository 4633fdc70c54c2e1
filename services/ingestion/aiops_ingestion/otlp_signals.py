"""The three OTLP signals as data: how an export request is decoded, normalized, published and answered.

The HTTP API (``/v1/metrics``...) and the gRPC services (``MetricsService/Export``...)
serve the same signals; only the transport, its status codes and the ``source``
label of the records differ.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from aiops_common.schemas import LogRecord, MetricBatchBuilder, Span
from aiops_common.topics import Topics
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsPartialSuccess,
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsPartialSuccess,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from aiops_ingestion import normalize as nz
from aiops_ingestion import telemetry
from aiops_ingestion.pipeline import Pipeline
from aiops_ingestion.publishing import RecordPublisher

__all__ = ["LOGS", "METRICS", "SIGNALS", "TRACES", "OtlpSignal"]

Req = TypeVar("Req")
Rows = TypeVar("Rows")
Resp = TypeVar("Resp", bound=Message, covariant=True)


@dataclass(frozen=True, slots=True)
class OtlpSignal(Generic[Req, Rows, Resp]):
    """One OTLP signal: where it is received and what becomes of its export requests."""

    name: str
    """``metrics``, ``logs`` or ``traces``; the gRPC endpoint label is ``grpc:<name>``."""
    items: str
    """What the signal's items are called in refusals: ``data points``, ``log records``, ``spans``."""
    http_path: str
    request_message: str
    """The opentelemetry-proto message of an export request, named in the OpenAPI document."""
    parse_http: Callable[[bytes, str], Req]
    """An OTLP/HTTP body (Content-Encoding undone) and its media type to a request."""
    normalize: Callable[[Pipeline, Req, nz.Rejections], Rows]
    """The valid items of a request as rows; the invalid ones counted in the Rejections."""
    publish: Callable[[RecordPublisher, Rows, str], Awaitable[int]]
    """A :class:`RecordPublisher` method: returns once the broker acknowledged every record."""
    response: Callable[[int, str], Resp]
    """The export response for a number of rejected items and why (``partial_success`` when any)."""

    async def export(self, pipeline: Pipeline, request: Req, source: str, endpoint: str) -> Resp:
        """Normalize and publish the valid items of ``request``, and answer with the rejected ones.

        As the OTLP specification asks, a request with some invalid items is
        accepted with a ``partial_success`` that counts and names them; it is
        refused (``InvalidPayloadError``) only when it cannot be decoded or holds no
        valid item. Raises ``BrokerUnavailableError`` when the broker does not
        acknowledge.
        """
        rejections = nz.Rejections(self.items, partial=True)
        rows = self.normalize(pipeline, request, rejections)
        await self.publish(pipeline.records, rows, source)
        if not rejections.count:
            return self.response(0, "")
        telemetry.PARTIALLY_REJECTED.labels(endpoint).inc(rejections.count)
        return self.response(rejections.count, "request partially accepted, " + rejections.message())


def _metrics_response(rejected: int, message: str) -> ExportMetricsServiceResponse:
    if not rejected:
        return ExportMetricsServiceResponse()
    partial = ExportMetricsPartialSuccess(rejected_data_points=rejected, error_message=message)
    return ExportMetricsServiceResponse(partial_success=partial)


def _logs_response(rejected: int, message: str) -> ExportLogsServiceResponse:
    if not rejected:
        return ExportLogsServiceResponse()
    partial = ExportLogsPartialSuccess(rejected_log_records=rejected, error_message=message)
    return ExportLogsServiceResponse(partial_success=partial)


def _traces_response(rejected: int, message: str) -> ExportTraceServiceResponse:
    if not rejected:
        return ExportTraceServiceResponse()
    return ExportTraceServiceResponse(
        partial_success=ExportTracePartialSuccess(rejected_spans=rejected, error_message=message)
    )


METRICS: OtlpSignal[Any, MetricBatchBuilder, ExportMetricsServiceResponse] = OtlpSignal(
    name="metrics",
    items="data points",
    http_path="/v1/metrics",
    request_message="ExportMetricsServiceRequest",
    parse_http=nz.parse_otlp_metrics,
    # The request is an ExportMetricsView (over gRPC as well): see normalize_otlp_metrics.
    normalize=lambda pipeline, request, rejections: nz.normalize_otlp_metrics(
        request,
        pipeline.limits,
        pipeline.enricher,
        Topics.METRICS_RAW.partitions,
        cache=pipeline.series_cache,
        rejections=rejections,
    ),
    publish=RecordPublisher.metrics,
    response=_metrics_response,
)
LOGS: OtlpSignal[ExportLogsServiceRequest, list[LogRecord], ExportLogsServiceResponse] = OtlpSignal(
    name="logs",
    items="log records",
    http_path="/v1/logs",
    request_message="ExportLogsServiceRequest",
    parse_http=nz.parse_otlp_logs,
    normalize=lambda pipeline, request, rejections: nz.normalize_otlp_logs(
        request, pipeline.limits, pipeline.enricher, rejections=rejections
    ),
    publish=RecordPublisher.logs,
    response=_logs_response,
)
TRACES: OtlpSignal[ExportTraceServiceRequest, list[Span], ExportTraceServiceResponse] = OtlpSignal(
    name="traces",
    items="spans",
    http_path="/v1/traces",
    request_message="ExportTraceServiceRequest",
    parse_http=nz.parse_otlp_traces,
    normalize=lambda pipeline, request, rejections: nz.normalize_otlp_traces(
        request, pipeline.limits, pipeline.enricher, rejections=rejections
    ),
    publish=RecordPublisher.spans,
    response=_traces_response,
)
SIGNALS: tuple[OtlpSignal[Any, Any, Message], ...] = (METRICS, LOGS, TRACES)
