"""Rejections refuse a request whole, or (OTLP) keep its valid items and count the rest; JSON body types."""

from __future__ import annotations

import pytest
from aiops_ingestion.normalize import (
    Enricher,
    InvalidPayloadError,
    Limits,
    Rejections,
    normalize_otlp_logs,
    normalize_otlp_metrics,
    normalize_otlp_traces,
)
from aiops_ingestion.normalize._json_body import parse_json_body
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2 as pb
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1 import trace_pb2
from pydantic import BaseModel

pytestmark = pytest.mark.unit

NOW_MS = 1_700_000_000_000
NOW_NS = NOW_MS * 1_000_000
RESOURCE = Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value="api"))])


def test_whole_rejections_refuse_for_any_invalid_item() -> None:
    rejections = Rejections("samples")
    rejections.add("a", "bad")
    with pytest.raises(InvalidPayloadError, match=r"^request refused, 1 of 3 samples invalid: a: bad$"):
        rejections.settle(3)


def test_partial_rejections_refuse_only_when_nothing_is_valid() -> None:
    rejections = Rejections("spans", shown=1, partial=True)
    rejections.add("a", "bad")
    rejections.add("resource", "conflict", 2)
    rejections.settle(4)
    assert rejections.count == 3 and rejections.message() == "3 of 4 spans invalid: a: bad; and 2 more"
    with pytest.raises(InvalidPayloadError, match="request refused, 3 of 3 spans invalid"):
        rejections.settle(3)
    assert Rejections("spans", partial=True).message() == ""


def test_raise_if_any_refuses_whatever_partial_says() -> None:
    rejections = Rejections("series", partial=True)
    rejections.add("a", "bad")
    with pytest.raises(InvalidPayloadError):
        rejections.raise_if_any(10)


def _metrics(*times_ns: int) -> ExportMetricsServiceRequest:
    metrics = [
        pb.Metric(name=f"m{i}", gauge=pb.Gauge(data_points=[pb.NumberDataPoint(as_double=i, time_unix_nano=t)]))
        for i, t in enumerate(times_ns)
    ]
    scope = pb.ScopeMetrics(metrics=metrics)
    return ExportMetricsServiceRequest(resource_metrics=[pb.ResourceMetrics(resource=RESOURCE, scope_metrics=[scope])])


def test_otlp_metrics_keep_the_valid_points_of_a_partial_request() -> None:
    rejections = Rejections("data points", partial=True)
    builder = normalize_otlp_metrics(
        _metrics(NOW_NS, NOW_MS, NOW_NS), Limits(), Enricher(), 1, now_ms=NOW_MS, rejections=rejections
    )
    names = [m.name for m, _t, _v in builder.build().samples()]
    assert sorted(names) == ["m0", "m2"]
    assert rejections.count == 1 and "1 of 3 data points invalid: m1{service=" in rejections.message()
    assert "looks like milliseconds where Unix nanoseconds are expected" in rejections.message()


def test_otlp_metrics_refuse_a_request_with_any_invalid_point_by_default() -> None:
    with pytest.raises(InvalidPayloadError, match="1 of 2 data points invalid"):
        normalize_otlp_metrics(_metrics(NOW_NS, NOW_MS), Limits(), Enricher(), 1, now_ms=NOW_MS)


def test_otlp_logs_and_spans_keep_the_valid_items_of_a_partial_request() -> None:
    records = [
        logs_pb2.LogRecord(body=AnyValue(string_value=b), time_unix_nano=t) for b, t in [("a", NOW_NS), ("b", 7)]
    ]
    logs = ExportLogsServiceRequest(
        resource_logs=[logs_pb2.ResourceLogs(resource=RESOURCE, scope_logs=[logs_pb2.ScopeLogs(log_records=records)])]
    )
    rejections = Rejections("log records", partial=True)
    kept = normalize_otlp_logs(logs, Limits(), Enricher(), now_ms=NOW_MS, rejections=rejections)
    assert [r.body for r in kept] == ["a"] and rejections.count == 1

    spans = [
        trace_pb2.Span(name=n, trace_id=t, span_id=b"\x01" * 8, start_time_unix_nano=NOW_NS, end_time_unix_nano=NOW_NS)
        for n, t in [("ok", b"\x02" * 16), ("bad", b"\x02")]
    ]
    traces = ExportTraceServiceRequest(
        resource_spans=[trace_pb2.ResourceSpans(resource=RESOURCE, scope_spans=[trace_pb2.ScopeSpans(spans=spans)])]
    )
    rejections = Rejections("spans", partial=True)
    assert [
        s.name for s in normalize_otlp_traces(traces, Limits(), Enricher(), now_ms=NOW_MS, rejections=rejections)
    ] == ["ok"]
    assert "1 of 2 spans invalid: span 'bad'" in rejections.message()


class _Body(BaseModel):
    a: int


@pytest.mark.parametrize(
    "content_type", [None, "", "application/json", "application/json; charset=utf-8", 'APPLICATION/JSON;charset="UTF8"']
)
def test_json_bodies_accept_json_in_utf8_or_no_content_type(content_type: str | None) -> None:
    assert parse_json_body(_Body, b'{"a": 1}', content_type, "body").a == 1


@pytest.mark.parametrize(
    ("content_type", "message"),
    [
        ("text/plain", "unsupported Content-Type 'text/plain' for body: send Content-Type: application/json"),
        (
            "application/x-www-form-urlencoded",
            "unsupported Content-Type 'application/x-www-form-urlencoded' for body: "
            "send Content-Type: application/json",
        ),
        ("application/json; charset=latin-1", "unsupported charset 'latin-1' for body: JSON is read as UTF-8"),
    ],
)
def test_json_bodies_refuse_other_content_types_with_415(content_type: str, message: str) -> None:
    with pytest.raises(InvalidPayloadError) as refused:
        parse_json_body(_Body, b'{"a": 1}', content_type, "body")
    assert refused.value.status_code == 415 and refused.value.message == message
