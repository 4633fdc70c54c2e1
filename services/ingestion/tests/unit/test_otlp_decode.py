"""OTLP/HTTP bodies decode from binary protobuf and from OTLP/JSON (hex ids, enum names, int64 strings)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from aiops_ingestion.normalize import (
    InvalidPayloadError,
    parse_otlp_logs,
    parse_otlp_metrics,
    parse_otlp_traces,
)
from google.protobuf import json_format
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.metrics.v1 import metrics_pb2 as pb

pytestmark = pytest.mark.unit

# The trace example of the OTLP specification (opentelemetry-proto examples/trace.json), abridged.
TRACE_JSON = {
    "resourceSpans": [
        {
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "my.service"}}]},
            "scopeSpans": [
                {
                    "scope": {"name": "my.library", "version": "1.0.0"},
                    "spans": [
                        {
                            "traceId": "5B8EFFF798038103D269B633813FC60C",
                            "spanId": "EEE19B7EC3C1B174",
                            "parentSpanId": "EEE19B7EC3C1B173",
                            "name": "I'm a server span",
                            "startTimeUnixNano": "1544712660000000000",
                            "endTimeUnixNano": "1544712661000000000",
                            "kind": 2,
                            "status": {"code": "STATUS_CODE_ERROR"},
                            "links": [{"traceId": "0102030405060708090a0b0c0d0e0f10", "spanId": "0102030405060708"}],
                            "attributes": [{"key": "my.span.attr", "value": {"stringValue": "some value"}}],
                        }
                    ],
                }
            ],
        }
    ]
}

METRICS_JSON = {
    "resourceMetrics": [
        {
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]},
            "scopeMetrics": [
                {
                    "metrics": [
                        {
                            "name": "my.counter",
                            "unit": "1",
                            "sum": {
                                "aggregationTemporality": "AGGREGATION_TEMPORALITY_CUMULATIVE",
                                "isMonotonic": True,
                                "dataPoints": [
                                    {
                                        "asInt": "9007199254740993",
                                        "timeUnixNano": "1544712660300000000",
                                        "exemplars": [{"asDouble": 1.0, "traceId": "5b8efff798038103d269b633813fc60c"}],
                                    }
                                ],
                            },
                        },
                        {
                            "name": "my.gauge",
                            "gauge": {"dataPoints": [{"asDouble": 10, "timeUnixNano": 1544712660300000000}]},
                            "futureField": {"ignored": True},
                        },
                    ]
                }
            ],
        }
    ]
}


def test_otlp_json_spec_example_reads_hex_ids_enum_ints_and_int64_strings() -> None:
    req = parse_otlp_traces(json.dumps(TRACE_JSON).encode(), "application/json")
    span = req.resource_spans[0].scope_spans[0].spans[0]
    assert span.trace_id.hex() == "5b8efff798038103d269b633813fc60c"
    assert span.span_id.hex() == "eee19b7ec3c1b174" and span.parent_span_id.hex() == "eee19b7ec3c1b173"
    assert span.links[0].trace_id == bytes(range(1, 17)) and span.links[0].span_id == bytes(range(1, 9))
    assert span.start_time_unix_nano == 1544712660000000000
    assert span.kind == 2 and span.status.code == 2


def test_otlp_json_metrics_read_enum_names_large_int64_and_ignore_unknown_fields() -> None:
    parsed = parse_otlp_metrics(json.dumps(METRICS_JSON).encode(), "application/json; charset=utf-8")
    # The parsed view leaves number points as bytes: read them through the full message.
    req = ExportMetricsServiceRequest.FromString(parsed.SerializeToString())
    counter, gauge = req.resource_metrics[0].scope_metrics[0].metrics
    assert counter.sum.aggregation_temporality == pb.AGGREGATION_TEMPORALITY_CUMULATIVE
    assert counter.sum.data_points[0].as_int == 9007199254740993  # beyond double precision: read exactly
    assert counter.sum.data_points[0].exemplars[0].trace_id.hex() == "5b8efff798038103d269b633813fc60c"
    assert gauge.gauge.data_points[0].as_double == 10.0


def test_protobuf_and_json_encodings_of_one_request_decode_equal() -> None:
    from_json = parse_otlp_metrics(json.dumps(METRICS_JSON).encode(), "application/json")
    from_proto = parse_otlp_metrics(from_json.SerializeToString(), "application/x-protobuf")
    assert from_proto == from_json and from_proto.ByteSize() > 0
    # protobuf's generic JSON mapping would read the same id as base64: OTLP/JSON's hex rule matters.
    generic = json_format.ParseDict(METRICS_JSON, ExportMetricsServiceRequest(), ignore_unknown_fields=True)
    assert generic.SerializeToString() != from_json.SerializeToString()


@pytest.mark.parametrize("parse", [parse_otlp_metrics, parse_otlp_logs, parse_otlp_traces])
@pytest.mark.parametrize("content_type", ["text/plain", "", "application/grpc", "application/x-www-form-urlencoded"])
def test_unsupported_content_types_are_415(parse: Callable[[bytes, str], Any], content_type: str) -> None:
    with pytest.raises(InvalidPayloadError) as caught:
        parse(b"{}", content_type)
    assert caught.value.status_code == 415 and "application/x-protobuf or application/json" in caught.value.message


def test_alternative_protobuf_media_type_is_accepted() -> None:
    assert parse_otlp_logs(b"", "Application/Protobuf") == parse_otlp_logs(b"", "application/x-protobuf")


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"\x0a\xff\xff\xff\xff\x0f", "application/x-protobuf", "not a valid protobuf ExportTraceServiceRequest"),
        (b"{not json", "application/json", "not valid JSON"),
        (b"\xff\xfe\x00", "application/json", "not valid JSON"),
        (b"[1, 2]", "application/json", "must be a JSON object"),
        (b'{"resourceSpans": 5}', "application/json", "not valid OTLP/JSON"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}', "application/json", "not hex"),
        (
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]}',
            "application/json",
            "OTLP",
        ),
        (b"[" * 100_000, "application/json", "not valid JSON"),
    ],
)
def test_malformed_bodies_are_400(body: bytes, content_type: str, message: str) -> None:
    with pytest.raises(InvalidPayloadError) as caught:
        parse_otlp_traces(body, content_type)
    assert caught.value.status_code == 400 and message in caught.value.message


def test_base64_ids_are_refused_with_a_hint_about_hex() -> None:
    body = {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "W47/95gDgQPSabYzgT/GDA=="}]}]}]}
    with pytest.raises(InvalidPayloadError, match="OTLP/JSON writes trace and span ids as hex"):
        parse_otlp_traces(json.dumps(body).encode(), "application/json")


def test_empty_protobuf_body_is_an_empty_request() -> None:
    assert parse_otlp_traces(b"", "application/x-protobuf") == ExportTraceServiceRequest()
