"""OTLP/gRPC status codes: INVALID_ARGUMENT with the reason for bad data, UNAVAILABLE while the broker is down."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from aiops_common.broker import EmbeddedBroker
from aiops_common.broker.reader import read_values
from aiops_common.process import suspended
from aiops_common.schemas import LogBatch, MetricBatch, SpanBatch
from aiops_common.testing.eventually import scaled
from aiops_common.topics import Topics, TopicSpec
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1 import trace_pb2

pytestmark = pytest.mark.functional

SIGNALS = ["metrics", "logs", "traces"]


def _resource(service: str) -> Resource:
    return Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value=service))])


def _metrics(service: str, value: float) -> metrics_service_pb2.ExportMetricsServiceRequest:
    point = metrics_pb2.NumberDataPoint(as_double=value, time_unix_nano=time.time_ns())
    metric = metrics_pb2.Metric(name="probe", gauge=metrics_pb2.Gauge(data_points=[point]))
    scope = metrics_pb2.ScopeMetrics(metrics=[metric])
    resource = metrics_pb2.ResourceMetrics(resource=_resource(service), scope_metrics=[scope])
    return metrics_service_pb2.ExportMetricsServiceRequest(resource_metrics=[resource])


def _logs(service: str, time_unix_nano: int) -> logs_service_pb2.ExportLogsServiceRequest:
    record = logs_pb2.LogRecord(body=AnyValue(string_value="probe"), time_unix_nano=time_unix_nano)
    resource = logs_pb2.ResourceLogs(resource=_resource(service), scope_logs=[logs_pb2.ScopeLogs(log_records=[record])])
    return logs_service_pb2.ExportLogsServiceRequest(resource_logs=[resource])


def _traces(service: str, trace_id: bytes) -> trace_service_pb2.ExportTraceServiceRequest:
    now = time.time_ns()
    span = trace_pb2.Span(
        name="probe", trace_id=trace_id, span_id=b"\x01" * 8, start_time_unix_nano=now, end_time_unix_nano=now
    )
    resource = trace_pb2.ResourceSpans(resource=_resource(service), scope_spans=[trace_pb2.ScopeSpans(spans=[span])])
    return trace_service_pb2.ExportTraceServiceRequest(resource_spans=[resource])


def _valid(name: str, service: str) -> Message:
    if name == "metrics":
        return _metrics(service, 1.0)
    if name == "logs":
        return _logs(service, time.time_ns())
    return _traces(service, b"\x02" * 16)


# One bad request per signal and the words its refusal must say.
_INVALID: dict[str, tuple[Callable[[str], Message], str]] = {
    "metrics": (lambda service: _metrics(service, float("inf")), "1 of 1 data points invalid: probe{"),
    "logs": (lambda service: _logs(service, 1), "1 of 1 log records invalid: log record 0 of service"),
    "traces": (lambda service: _traces(service, b"abc"), "1 of 1 spans invalid: span 'probe'"),
}

_TOPICS: dict[str, tuple[TopicSpec, Callable[[bytes], list[str]]]] = {
    "metrics": (
        Topics.METRICS_RAW,
        lambda raw: [m.labels.get("service", "") for m, _t, _v in MetricBatch.decode(raw).samples()],
    ),
    "logs": (Topics.LOGS_RAW, lambda raw: [r.service for r in LogBatch.decode(raw).rows]),
    "traces": (Topics.TRACES_RAW, lambda raw: [s.service for s in SpanBatch.decode(raw).rows]),
}


def _export(address: str, name: str, request: Message) -> Message:
    stubs = {
        "metrics": metrics_service_pb2_grpc.MetricsServiceStub,
        "logs": logs_service_pb2_grpc.LogsServiceStub,
        "traces": trace_service_pb2_grpc.TraceServiceStub,
    }
    with grpc.insecure_channel(address) as channel:
        response: Message = stubs[name](channel).Export(request, timeout=30)
        return response


def _export_error(address: str, name: str, request: Message) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as refused:
        _export(address, name, request)
    return refused.value


def _requests_total(http_url: str, endpoint: str, code: str) -> float:
    text = httpx.get(http_url + "/metrics", timeout=10).text
    line = re.search(rf'^aiops_ingest_requests_total\{{code="{code}",endpoint="{endpoint}"\}} (\S+)$', text, re.M)
    return float(line.group(1)) if line else 0.0


@pytest.mark.parametrize("name", SIGNALS)
def test_valid_export_is_ok_and_lands_on_its_topic(name: str, ingestion: Any) -> None:
    service = f"grpc-ok-{name}"
    response = _export(ingestion.grpc_address, name, _valid(name, service))
    assert response.ByteSize() == 0, "no partial success: all of the request was accepted"
    spec, services = _TOPICS[name]

    def ours(values: list[bytes]) -> bool:
        return any(service in services(raw) for raw in values)

    values = asyncio.run(read_values(ingestion.broker_url, spec, ingestion.prefix, until=ours, timeout_s=scaled(30)))
    assert ours(values)
    assert _requests_total(ingestion.http_url, f"grpc:{name}", "OK") >= 1


@pytest.mark.parametrize("name", SIGNALS)
def test_invalid_export_is_invalid_argument_naming_the_offender(name: str, ingestion: Any) -> None:
    build, reason = _INVALID[name]
    error = _export_error(ingestion.grpc_address, name, build(f"grpc-bad-{name}"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("request refused, ") and reason in error.details(), error.details()
    assert _requests_total(ingestion.http_url, f"grpc:{name}", "INVALID_ARGUMENT") >= 1
    assert ingestion.proc.poll() is None


def test_broker_outage_is_unavailable_on_every_service(tmp_path: Path, ingestion_factory: Callable[..., Any]) -> None:
    # Its own broker: the outage must not touch other tests' topics.
    with EmbeddedBroker(log_path=tmp_path / "broker.log") as broker:
        service = ingestion_factory(broker.url, "grpc-outage.", AIOPS_PUBLISH_TIMEOUT_S="2")
        try:
            assert broker._proc is not None
            pid = broker._proc.pid
            with suspended(pid):  # the broker hangs: nothing sent to it is acknowledged
                for name in SIGNALS:
                    error = _export_error(service.grpc_address, name, _valid(name, f"grpc-outage-{name}"))
                    assert error.code() == grpc.StatusCode.UNAVAILABLE, (name, error.details())
                    assert error.details() == "the message broker is unavailable; retry later"
                    assert _requests_total(service.http_url, f"grpc:{name}", "UNAVAILABLE") == 1
        finally:
            service.stop()  # before its broker goes away, so it can leave its consumer group
