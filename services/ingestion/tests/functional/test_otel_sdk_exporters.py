"""The OpenTelemetry SDK's own OTLP exporters (HTTP and gRPC) send metrics, logs and spans end to end."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from typing import Any

import pytest
from aiops_common.broker.reader import read_values
from aiops_common.schemas import LogBatch, MetricBatch, MetricKind, SpanBatch
from aiops_common.testing.eventually import scaled
from aiops_common.topics import Topics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

pytestmark = pytest.mark.functional


def _exporters(transport: str, ingestion: Any) -> dict[str, Any]:
    if transport == "http":
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        base = ingestion.http_url
        return {
            "metrics": OTLPMetricExporter(endpoint=f"{base}/v1/metrics"),
            "logs": OTLPLogExporter(endpoint=f"{base}/v1/logs"),
            "traces": OTLPSpanExporter(endpoint=f"{base}/v1/traces"),
        }
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter

    addr = ingestion.grpc_address
    return {
        "metrics": GrpcMetricExporter(endpoint=addr, insecure=True),
        "logs": GrpcLogExporter(endpoint=addr, insecure=True),
        "traces": GrpcSpanExporter(endpoint=addr, insecure=True),
    }


def _read(ingestion: Any, spec: Any, done: Callable[[list[bytes]], bool]) -> list[bytes]:
    return asyncio.run(read_values(ingestion.broker_url, spec, ingestion.prefix, until=done, timeout_s=scaled(30)))


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_metrics_of_every_type_arrive_with_values_labels_and_kinds(transport: str, ingestion: Any) -> None:
    service = f"checkout-{transport}"
    exporter: MetricExporter = _exporters(transport, ingestion)["metrics"]
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(
        resource=Resource.create({"service.name": service, "deployment.environment": "prod"}),
        metric_readers=[reader],
        views=[View(instrument_name="payload.size", aggregation=ExponentialBucketHistogramAggregation())],
    )
    meter = provider.get_meter("test")
    meter.create_counter("orders").add(5, {"region": "eu"})
    meter.create_up_down_counter("queue.depth").add(3)
    latency = meter.create_histogram("latency", unit="s")
    for v in (0.1, 0.2, 3.0):
        latency.record(v)
    size = meter.create_histogram("payload.size")
    for v in (10.0, 100.0, 1000.0, 1000.0):
        size.record(v)
    meter.create_observable_gauge("temperature", callbacks=[lambda _opts: [_observation(21.5)]])
    assert provider.force_flush(10_000)
    provider.shutdown()

    def samples(values: list[bytes]) -> dict[str, list[tuple[dict[str, str], str, float]]]:
        out: dict[str, list[tuple[dict[str, str], str, float]]] = {}
        for raw in values:
            for meta, _ts, value in MetricBatch.decode(raw).samples():
                if meta.labels.get("service") == service:
                    out.setdefault(meta.name, []).append((dict(meta.labels), meta.kind.value, value))
        return out

    wanted = {"orders", "queue_depth", "latency_bucket", "latency_sum", "latency_count", "temperature"}
    got = samples(_read(ingestion, Topics.METRICS_RAW, lambda v: wanted <= set(samples(v))))
    assert wanted <= set(got), f"missing {wanted - set(got)}"

    # force_flush and shutdown each export once: cumulative points repeat with the same value.
    assert {(k, v) for _lab, k, v in got["orders"]} == {(MetricKind.COUNTER.value, 5.0)}
    labels = got["orders"][0][0]
    assert labels["region"] == "eu" and labels["env"] == "prod"
    assert {(k, v) for _lab, k, v in got["queue_depth"]} == {(MetricKind.GAUGE.value, 3.0)}
    assert {(k, v) for _lab, k, v in got["temperature"]} == {(MetricKind.GAUGE.value, 21.5)}
    assert {(k, v) for _lab, k, v in got["latency_count"]} == {(MetricKind.HISTOGRAM.value, 3.0)}
    assert got["latency_sum"][0][2] == pytest.approx(3.3)
    buckets = {float(lab["le"]): v for lab, _k, v in got["latency_bucket"]}
    assert buckets[float("inf")] == 3.0
    assert buckets[0.0] == 0.0
    assert buckets[5.0] == 3.0 and buckets[250.0] == 3.0
    # Exponential histogram: counts survive the conversion to explicit buckets.
    assert got["payload_size_count"][0][2] == 4.0
    assert got["payload_size_sum"][0][2] == pytest.approx(2110.0)
    exp_buckets = sorted((float(lab["le"]), v) for lab, _k, v in got["payload_size_bucket"])
    assert exp_buckets[-1] == (float("inf"), 4.0)
    assert all(a[1] <= b[1] for a, b in itertools.pairwise(exp_buckets)), "buckets are cumulative"


def _observation(value: float) -> Any:
    from opentelemetry.metrics import Observation

    return Observation(value)


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_logs_arrive_with_severity_service_and_trace_context(transport: str, ingestion: Any) -> None:
    from opentelemetry._logs import LogRecord, SeverityNumber
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor

    service = f"payments-{transport}"
    provider = LoggerProvider(resource=Resource.create({"service.name": service}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(_exporters(transport, ingestion)["logs"]))
    logger = provider.get_logger("test")
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("pay") as span:
        logger.emit(LogRecord(body="payment p-42 failed", severity_number=SeverityNumber.ERROR, severity_text="ERROR"))
        trace_id = format(span.get_span_context().trace_id, "032x")
    logger.emit(LogRecord(body="payment retried", severity_number=SeverityNumber.INFO, attributes={"attempt": 2}))
    provider.shutdown()

    def rows(values: list[bytes]) -> list[Any]:
        return [r for raw in values for r in LogBatch.decode(raw).rows if r.service == service]

    got = rows(_read(ingestion, Topics.LOGS_RAW, lambda v: len(rows(v)) >= 2))
    by_body = {r.body: r for r in got}
    assert set(by_body) == {"payment p-42 failed", "payment retried"}
    failed, retried = by_body["payment p-42 failed"], by_body["payment retried"]
    assert (failed.severity, failed.severity_number) == ("ERROR", SeverityNumber.ERROR.value)
    assert failed.trace_id == trace_id and len(failed.span_id) == 16
    assert retried.severity == "INFO" and retried.labels["attempt"] == "2" and retried.trace_id == ""
    # No timestamp given: the SDK's observed time is used.
    assert abs(retried.ts_ns / 1e9 - time.time()) < 300


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_spans_arrive_linked_with_kind_and_status(transport: str, ingestion: Any) -> None:
    service = f"frontend-{transport}"
    exporter: SpanExporter = _exporters(transport, ingestion)["traces"]
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("GET /checkout", kind=SpanKind.SERVER) as parent:
        parent.set_attribute("http.route", "/checkout")
        with tracer.start_as_current_span("charge", kind=SpanKind.CLIENT) as child:
            child.set_status(Status(StatusCode.ERROR, "card declined"))
    provider.shutdown()

    def spans(values: list[bytes]) -> list[Any]:
        return [s for raw in values for s in SpanBatch.decode(raw).rows if s.service == service]

    got = {s.name: s for s in spans(_read(ingestion, Topics.TRACES_RAW, lambda v: len(spans(v)) >= 2))}
    root, charge = got["GET /checkout"], got["charge"]
    assert root.parent_span_id == "" and root.kind == "SERVER"
    assert charge.parent_span_id == root.span_id and charge.trace_id == root.trace_id
    assert charge.kind == "CLIENT" and charge.status == "ERROR"
    assert len(root.trace_id) == 32 and len(root.span_id) == 16
    assert root.labels["http_route"] == "/checkout"
    assert root.end_ns >= charge.end_ns > charge.start_ns >= root.start_ns
