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
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from aiops_ingestion import normalize as nz
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
    http_path: str
    parse_http: Callable[[bytes, str], Req]
    """An OTLP/HTTP body (Content-Encoding undone) and its media type to a request."""
    normalize: Callable[[Pipeline, Req], Rows]
    publish: Callable[[RecordPublisher, Rows, str], Awaitable[int]]
    """A :class:`RecordPublisher` method: returns once the broker acknowledged every record."""
    response: Callable[[], Resp]

    async def export(self, pipeline: Pipeline, request: Req, source: str) -> Resp:
        """Normalize and publish ``request``; raises ``InvalidPayloadError`` or ``BrokerUnavailableError``."""
        await self.publish(pipeline.records, self.normalize(pipeline, request), source)
        return self.response()


METRICS: OtlpSignal[Any, MetricBatchBuilder, ExportMetricsServiceResponse] = OtlpSignal(
    name="metrics",
    http_path="/v1/metrics",
    parse_http=nz.parse_otlp_metrics,
    # The request is an ExportMetricsView (over gRPC as well): see normalize_otlp_metrics.
    normalize=lambda pipeline, request: nz.normalize_otlp_metrics(
        request, pipeline.limits, pipeline.enricher, Topics.METRICS_RAW.partitions, cache=pipeline.series_cache
    ),
    publish=RecordPublisher.metrics,
    response=ExportMetricsServiceResponse,
)
LOGS: OtlpSignal[ExportLogsServiceRequest, list[LogRecord], ExportLogsServiceResponse] = OtlpSignal(
    name="logs",
    http_path="/v1/logs",
    parse_http=nz.parse_otlp_logs,
    normalize=lambda pipeline, request: nz.normalize_otlp_logs(request, pipeline.limits, pipeline.enricher),
    publish=RecordPublisher.logs,
    response=ExportLogsServiceResponse,
)
TRACES: OtlpSignal[ExportTraceServiceRequest, list[Span], ExportTraceServiceResponse] = OtlpSignal(
    name="traces",
    http_path="/v1/traces",
    parse_http=nz.parse_otlp_traces,
    normalize=lambda pipeline, request: nz.normalize_otlp_traces(request, pipeline.limits, pipeline.enricher),
    publish=RecordPublisher.spans,
    response=ExportTraceServiceResponse,
)
SIGNALS: tuple[OtlpSignal[Any, Any, Message], ...] = (METRICS, LOGS, TRACES)
