"""Refusals a sender can act on, through the real servers: content types, time units, OTLP partial success."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import grpc
import httpx
import pytest
from aiops_common.broker.reader import read_values
from aiops_common.schemas import LogBatch, MetricBatch, SpanBatch
from aiops_common.testing.eventually import scaled
from aiops_common.topics import Topics, TopicSpec
from aiops_ingestion.settings import IngestionSettings
from google.protobuf import json_format
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1 import trace_pb2

pytestmark = pytest.mark.functional

PROTOBUF = "application/x-protobuf"
JSON_APIS: dict[str, Callable[[str], dict[str, Any]]] = {
    "/api/v1/metrics/write": lambda service: {
        "samples": [{"name": "ct_probe", "value": 1, "labels": {"service": service}}]
    },
    "/api/v1/logs/write": lambda service: {"logs": [{"service": service, "message": "probe"}]},
    "/api/v1/events/deployment": lambda service: {"service": service, "version": "1"},
    "/api/v1/alerts/ingest": lambda service: {
        "status": "firing",
        "alerts": [{"status": "firing", "labels": {"alertname": "Probe", "service": service}, "startsAt": _now()}],
    },
}


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _resource(service: str) -> Resource:
    return Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value=service))])


def _gauges(service: str, times_ns: list[int]) -> metrics_service_pb2.ExportMetricsServiceRequest:
    """One single-point gauge per time, as SDKs send them: the quick path of the metrics normalizer."""
    metrics = [
        metrics_pb2.Metric(
            name=f"probe_{i}",
            gauge=metrics_pb2.Gauge(data_points=[metrics_pb2.NumberDataPoint(as_double=float(i), time_unix_nano=t)]),
        )
        for i, t in enumerate(times_ns)
    ]
    resource = metrics_pb2.ResourceMetrics(
        resource=_resource(service), scope_metrics=[metrics_pb2.ScopeMetrics(metrics=metrics)]
    )
    return metrics_service_pb2.ExportMetricsServiceRequest(resource_metrics=[resource])


def _read(ingestion: Any, spec: TopicSpec, done: Callable[[list[bytes]], bool]) -> list[bytes]:
    return asyncio.run(read_values(ingestion.broker_url, spec, ingestion.prefix, until=done, timeout_s=scaled(30)))


def _counter(http_url: str, name: str, endpoint: str) -> float:
    text = httpx.get(http_url + "/metrics", timeout=10).text
    line = re.search(rf'^{name}\{{endpoint="{re.escape(endpoint)}"\}} (\S+)$', text, re.M)
    return float(line.group(1)) if line else 0.0


# Content types of the JSON APIs ---------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(JSON_APIS))
@pytest.mark.parametrize(
    ("content_type", "status", "message"),
    [
        ("application/json", 2, ""),
        ("Application/JSON; charset=UTF-8", 2, ""),
        (None, 2, ""),  # no Content-Type: read as JSON
        ("text/plain", 415, "unsupported Content-Type 'text/plain'"),
        ("application/x-www-form-urlencoded", 415, "send Content-Type: application/json"),
        ("application/json; charset=iso-8859-1", 415, "unsupported charset 'iso-8859-1'"),
    ],
)
def test_json_apis_take_json_and_refuse_other_content_types_with_415(
    path: str, content_type: str | None, status: int, message: str, ingestion: Any
) -> None:
    body = json.dumps(JSON_APIS[path](f"ct-{path.rsplit('/', 1)[-1]}")).encode()
    headers = {} if content_type is None else {"Content-Type": content_type}
    response = httpx.post(ingestion.http_url + path, content=body, headers=headers, timeout=30)
    if status == 2:
        assert response.status_code // 100 == 2, response.text
    else:
        assert response.status_code == status and message in response.json()["error"], response.text


def test_otlp_refuses_an_unknown_content_type_with_a_json_status(ingestion: Any) -> None:
    response = httpx.post(ingestion.http_url + "/v1/logs", content=b"{}", headers={"Content-Type": "text/plain"})
    assert response.status_code == 415 and response.headers["content-type"].startswith("application/json")
    status = json_format.Parse(response.text, status_pb2.Status())
    assert status.code == code_pb2.INVALID_ARGUMENT and "unsupported Content-Type 'text/plain'" in status.message


# Times in the wrong unit, and the age limit ---------------------------------------------------


def test_a_time_in_the_wrong_unit_is_named_even_without_an_age_limit(
    broker_url: str, topic_prefix: str, ingestion_factory: Callable[..., Any]
) -> None:
    service = ingestion_factory(broker_url, topic_prefix, AIOPS_INGEST_MAX_SAMPLE_AGE_S="0")
    now_ms = time.time_ns() // 1_000_000
    # OTLP/HTTP protobuf: milliseconds in timeUnixNano land in 1970; refused with a protobuf Status.
    body = _gauges("units", [now_ms]).SerializeToString()
    response = httpx.post(service.http_url + "/v1/metrics", content=body, headers={"Content-Type": PROTOBUF})
    assert response.status_code == 400 and response.headers["content-type"] == PROTOBUF
    status = status_pb2.Status.FromString(response.content)
    assert status.code == code_pb2.INVALID_ARGUMENT
    assert "looks like milliseconds where Unix nanoseconds are expected" in status.message, status.message
    # The JSON API: nanoseconds where seconds or milliseconds are expected.
    sample = {"name": "units_probe", "value": 1, "timestamp": now_ms * 1_000_000}
    response = httpx.post(service.http_url + "/api/v1/metrics/write", json={"samples": [sample]})
    assert response.status_code == 400 and "looks like nanoseconds" in response.json()["error"], response.text
    # OTLP/JSON: seconds in a log record's timeUnixNano.
    record = {"timeUnixNano": str(now_ms // 1000), "body": {"stringValue": "x"}}
    logs = {"resourceLogs": [{"scopeLogs": [{"logRecords": [record]}]}]}
    response = httpx.post(service.http_url + "/v1/logs", json=logs)
    assert response.status_code == 400
    message = response.json()["message"]
    assert "looks like seconds where Unix nanoseconds are expected" in message, message


def test_an_old_sample_is_refused_naming_the_age_setting_and_its_value(ingestion: Any) -> None:
    sample = {"name": "old_probe", "value": 1, "timestamp": "2020-01-01T00:00:00Z"}
    response = httpx.post(ingestion.http_url + "/api/v1/metrics/write", json={"samples": [sample]})
    assert response.status_code == 400
    age_s = IngestionSettings().ingest_max_sample_age_s  # the service runs with the default
    assert f"(AIOPS_INGEST_MAX_SAMPLE_AGE_S={age_s:.15g}; 0 turns the age check off)" in response.json()["error"]


# OTLP refusals and partial success ------------------------------------------------------------


def test_a_malformed_protobuf_request_is_refused_with_a_protobuf_status(ingestion: Any) -> None:
    response = httpx.post(ingestion.http_url + "/v1/traces", content=b"\xff\xff", headers={"Content-Type": PROTOBUF})
    assert response.status_code == 400 and response.headers["content-type"] == PROTOBUF
    status = status_pb2.Status.FromString(response.content)
    assert status.code == code_pb2.INVALID_ARGUMENT and "not a valid protobuf" in status.message


def test_a_malformed_otlp_json_request_is_refused_with_a_json_status(ingestion: Any) -> None:
    response = httpx.post(
        ingestion.http_url + "/v1/metrics", content=b"[1", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400 and response.headers["content-type"].startswith("application/json")
    assert "not valid JSON" in json_format.Parse(response.text, status_pb2.Status()).message


def _metric_services(raw: bytes) -> list[tuple[str, str]]:
    return [(m.labels.get("service", ""), m.name) for m, _t, _v in MetricBatch.decode(raw).samples()]


def test_otlp_http_protobuf_keeps_the_valid_points_and_answers_partial_success(ingestion: Any) -> None:
    service = "partial-metrics"
    now_ns = time.time_ns()
    before = _counter(ingestion.http_url, "aiops_ingest_partially_rejected_items_total", "/v1/metrics")
    body = _gauges(service, [now_ns, now_ns // 1_000_000, now_ns]).SerializeToString()
    response = httpx.post(ingestion.http_url + "/v1/metrics", content=body, headers={"Content-Type": PROTOBUF})
    assert response.status_code == 200 and response.headers["content-type"] == PROTOBUF
    partial = metrics_service_pb2.ExportMetricsServiceResponse.FromString(response.content).partial_success
    assert partial.rejected_data_points == 1
    assert partial.error_message.startswith("request partially accepted, 1 of 3 data points invalid: probe_1{")
    assert "looks like milliseconds where Unix nanoseconds are expected" in partial.error_message

    def both(values: list[bytes]) -> bool:
        return {("partial-metrics", "probe_0"), ("partial-metrics", "probe_2")} <= {
            pair for raw in values for pair in _metric_services(raw)
        }

    values = _read(ingestion, Topics.METRICS_RAW, both)
    assert both(values)
    assert ("partial-metrics", "probe_1") not in {pair for raw in values for pair in _metric_services(raw)}
    after = _counter(ingestion.http_url, "aiops_ingest_partially_rejected_items_total", "/v1/metrics")
    assert after == before + 1


def test_otlp_http_json_answers_partial_success_in_json(ingestion: Any) -> None:
    service = "partial-logs"
    now_ns = time.time_ns()
    good = {"timeUnixNano": str(now_ns), "body": {"stringValue": "kept"}}
    bad = {"timeUnixNano": str(now_ns // 1000), "body": {"stringValue": "refused"}}  # microseconds
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]}
    body = {"resourceLogs": [{"resource": resource, "scopeLogs": [{"logRecords": [good, bad]}]}]}
    response = httpx.post(ingestion.http_url + "/v1/logs", json=body)
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
    answer = json_format.Parse(response.text, logs_service_pb2.ExportLogsServiceResponse())
    assert answer.partial_success.rejected_log_records == 1
    assert "1 of 2 log records invalid: log record 1 of service 'partial-logs'" in answer.partial_success.error_message
    assert "looks like microseconds" in answer.partial_success.error_message

    def kept(values: list[bytes]) -> bool:
        return any(r.service == service for raw in values for r in LogBatch.decode(raw).rows)

    values = _read(ingestion, Topics.LOGS_RAW, kept)
    assert [r.body for raw in values for r in LogBatch.decode(raw).rows if r.service == service] == ["kept"]


def test_an_accepted_otlp_json_request_is_answered_with_an_empty_response(ingestion: Any) -> None:
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": "whole-logs"}}]}
    record = {"timeUnixNano": str(time.time_ns()), "body": {"stringValue": "x"}}
    body = {"resourceLogs": [{"resource": resource, "scopeLogs": [{"logRecords": [record]}]}]}
    response = httpx.post(ingestion.http_url + "/v1/logs", json=body)
    assert response.status_code == 200 and response.json() == {}


def test_otlp_grpc_keeps_the_valid_spans_and_answers_partial_success(ingestion: Any) -> None:
    service = "partial-traces"
    now = time.time_ns()
    spans = [
        trace_pb2.Span(
            name="kept", trace_id=b"\x03" * 16, span_id=b"\x01" * 8, start_time_unix_nano=now, end_time_unix_nano=now
        ),
        trace_pb2.Span(
            name="short id", trace_id=b"abc", span_id=b"\x02" * 8, start_time_unix_nano=now, end_time_unix_nano=now
        ),
    ]
    resource = trace_pb2.ResourceSpans(resource=_resource(service), scope_spans=[trace_pb2.ScopeSpans(spans=spans)])
    request = trace_service_pb2.ExportTraceServiceRequest(resource_spans=[resource])
    with grpc.insecure_channel(ingestion.grpc_address) as channel:
        response = trace_service_pb2_grpc.TraceServiceStub(channel).Export(request, timeout=30)
    assert response.partial_success.rejected_spans == 1
    assert "1 of 2 spans invalid: span 'short id' of service 'partial-traces'" in response.partial_success.error_message

    def kept(values: list[bytes]) -> bool:
        return any(s.service == service for raw in values for s in SpanBatch.decode(raw).rows)

    values = _read(ingestion, Topics.TRACES_RAW, kept)
    assert [s.name for raw in values for s in SpanBatch.decode(raw).rows if s.service == service] == ["kept"]
    assert _counter(ingestion.http_url, "aiops_ingest_partially_rejected_items_total", "grpc:traces") >= 1


def test_a_request_with_no_valid_item_is_refused_whole(ingestion: Any) -> None:
    record = logs_pb2.LogRecord(body=AnyValue(string_value="x"), time_unix_nano=5)
    resource = logs_pb2.ResourceLogs(
        resource=_resource("none-valid"), scope_logs=[logs_pb2.ScopeLogs(log_records=[record])]
    )
    body = logs_service_pb2.ExportLogsServiceRequest(resource_logs=[resource]).SerializeToString()
    response = httpx.post(ingestion.http_url + "/v1/logs", content=body, headers={"Content-Type": PROTOBUF})
    assert response.status_code == 400
    assert status_pb2.Status.FromString(response.content).message.startswith("request refused, 1 of 1 log records")


# OpenAPI and /docs ----------------------------------------------------------------------------


def test_openapi_describes_every_request_body(ingestion: Any) -> None:
    document = httpx.get(ingestion.http_url + "/openapi.json").json()
    posts = {path: item["post"] for path, item in document["paths"].items() if "post" in item}
    assert set(posts) >= {"/v1/metrics", "/v1/logs", "/v1/traces", "/api/v1/write", *JSON_APIS}
    for path, operation in posts.items():
        assert operation["requestBody"]["content"], path
    assert set(posts["/v1/traces"]["requestBody"]["content"]) == {PROTOBUF, "application/json"}
    schema = posts["/api/v1/metrics/write"]["requestBody"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/MetricsWrite"}
    refs = set(re.findall(r'"\$ref": ?"#/components/schemas/([^"]+)"', json.dumps(document)))
    assert refs and refs <= set(document["components"]["schemas"]), refs - set(document["components"]["schemas"])
    assert "samples" in document["components"]["schemas"]["MetricsWrite"]["properties"]


def test_docs_load_only_local_assets(ingestion: Any) -> None:
    with httpx.Client(base_url=ingestion.http_url, timeout=30) as client:
        page = client.get("/docs")
        assert page.status_code == 200
        urls = re.findall(r'(?:src|href)="([^"]+)"', page.text) + re.findall(r"url: '([^']+)'", page.text)
        assert len(urls) >= 4 and "http" not in page.text.replace(ingestion.http_url, "")
        for url in urls:
            assert url.startswith("/") and not url.startswith("//"), url
            asset = client.get(url)
            assert asset.status_code == 200 and asset.content, url
        assert b"SwaggerUIBundle" in client.get("/docs/assets/swagger-ui-bundle.js").content
