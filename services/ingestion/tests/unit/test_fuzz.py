"""Whatever bytes arrive, decoding and normalizing either succeeds or raises InvalidPayloadError, nothing else."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import cramjam
import pytest
from aiops_common.prompb.remote_pb2 import WriteRequest
from aiops_common.prompb.types_pb2 import Label, Sample, TimeSeries
from aiops_ingestion.normalize import (
    Enricher,
    InvalidPayloadError,
    Limits,
    normalize_otlp_logs,
    normalize_otlp_metrics,
    normalize_otlp_traces,
    normalize_remote_write,
    parse_alertmanager_webhook,
    parse_deployment_event,
    parse_logs_write,
    parse_metrics_write,
    parse_otlp_logs,
    parse_otlp_metrics,
    parse_otlp_traces,
    parse_remote_write,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2 as pb
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1 import trace_pb2

pytestmark = pytest.mark.unit

NOW_MS = 1_700_000_000_000
NOW_NS = NOW_MS * 1_000_000
LIMITS = Limits(max_series_per_request=5_000)
ENRICHER = Enricher.from_mapping({"svc": {"team": "t"}})
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=25,
)


def metrics_body(_body: bytes, content_type: str) -> object:
    return normalize_otlp_metrics(parse_otlp_metrics(_body, content_type), LIMITS, ENRICHER, 4, now_ms=NOW_MS)


def logs_body(body: bytes, content_type: str) -> object:
    return normalize_otlp_logs(parse_otlp_logs(body, content_type), LIMITS, ENRICHER, now_ms=NOW_MS)


def traces_body(body: bytes, content_type: str) -> object:
    return normalize_otlp_traces(parse_otlp_traces(body, content_type), LIMITS, ENRICHER, now_ms=NOW_MS)


def remote_write_body(body: bytes) -> object:
    return normalize_remote_write(parse_remote_write(body, LIMITS), LIMITS, ENRICHER, 4, now_ms=NOW_MS)


JSON_APIS: list[Callable[[bytes], object]] = [
    lambda b: parse_metrics_write(b, LIMITS, ENRICHER, 4, now_ms=NOW_MS),
    lambda b: parse_logs_write(b, LIMITS, ENRICHER, now_ms=NOW_MS),
    lambda b: parse_deployment_event(b, LIMITS, now_ms=NOW_MS),
    lambda b: parse_alertmanager_webhook(b, LIMITS),
]


def only_invalid_payload(call: Callable[[], object]) -> None:
    try:
        call()
    except InvalidPayloadError as exc:
        assert exc.status_code in (400, 413, 415) and exc.message


def mutate(data: bytes, edits: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for position, byte in edits:
        if out:
            out[position % len(out)] = byte
    return bytes(out)


def _kv(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _seed_metrics() -> bytes:
    temporality = pb.AGGREGATION_TEMPORALITY_CUMULATIVE
    gauge = pb.Gauge(data_points=[pb.NumberDataPoint(time_unix_nano=NOW_NS, as_double=1.0)])
    histogram_point = pb.HistogramDataPoint(
        time_unix_nano=NOW_NS, count=3, sum=2.0, explicit_bounds=[1.0], bucket_counts=[1, 2]
    )
    histogram = pb.Histogram(aggregation_temporality=temporality, data_points=[histogram_point])
    exponential_point = pb.ExponentialHistogramDataPoint(
        time_unix_nano=NOW_NS,
        scale=2,
        count=3,
        zero_count=1,
        positive=pb.ExponentialHistogramDataPoint.Buckets(offset=1, bucket_counts=[1, 1]),
    )
    exponential = pb.ExponentialHistogram(
        aggregation_temporality=pb.AGGREGATION_TEMPORALITY_DELTA, data_points=[exponential_point]
    )
    quantile = pb.SummaryDataPoint.ValueAtQuantile(quantile=0.5, value=1.0)
    summary = pb.Summary(
        data_points=[pb.SummaryDataPoint(time_unix_nano=NOW_NS, count=1, sum=1.0, quantile_values=[quantile])]
    )
    metrics = [
        pb.Metric(name="g", gauge=gauge),
        pb.Metric(name="h", histogram=histogram),
        pb.Metric(name="e", exponential_histogram=exponential),
        pb.Metric(name="s", summary=summary),
    ]
    resource = Resource(attributes=[_kv("service.name", "svc")])
    scope = pb.ScopeMetrics(metrics=metrics)
    request = ExportMetricsServiceRequest(
        resource_metrics=[pb.ResourceMetrics(resource=resource, scope_metrics=[scope])]
    )
    return request.SerializeToString()


SEED_METRICS = _seed_metrics()

SEED_LOGS = ExportLogsServiceRequest(
    resource_logs=[
        logs_pb2.ResourceLogs(
            resource=Resource(attributes=[_kv("service.name", "svc")]),
            scope_logs=[
                logs_pb2.ScopeLogs(
                    log_records=[
                        logs_pb2.LogRecord(
                            time_unix_nano=NOW_NS,
                            severity_number=logs_pb2.SEVERITY_NUMBER_WARN,
                            body=AnyValue(string_value="hello"),
                            trace_id=b"\x01" * 16,
                            attributes=[_kv("k", "v")],
                        )
                    ]
                )
            ],
        )
    ]
).SerializeToString()

SEED_TRACES = ExportTraceServiceRequest(
    resource_spans=[
        trace_pb2.ResourceSpans(
            resource=Resource(attributes=[_kv("service.name", "svc")]),
            scope_spans=[
                trace_pb2.ScopeSpans(
                    spans=[
                        trace_pb2.Span(
                            trace_id=b"\x01" * 16,
                            span_id=b"\x02" * 8,
                            name="op",
                            kind=trace_pb2.Span.SPAN_KIND_SERVER,
                            start_time_unix_nano=NOW_NS - 10,
                            end_time_unix_nano=NOW_NS,
                        )
                    ]
                )
            ],
        )
    ]
).SerializeToString()

SEED_REMOTE_WRITE = WriteRequest(
    timeseries=[
        TimeSeries(
            labels=[Label(name="__name__", value="up"), Label(name="job", value="svc")],
            samples=[Sample(value=1.0, timestamp=NOW_MS)],
        )
    ]
).SerializeToString()

OTLP = [
    (metrics_body, SEED_METRICS),
    (logs_body, SEED_LOGS),
    (traces_body, SEED_TRACES),
]


def test_seeds_are_valid_requests() -> None:
    for call, seed in OTLP:
        assert call(seed, "application/x-protobuf")
    assert remote_write_body(bytes(cramjam.snappy.compress_raw(SEED_REMOTE_WRITE)))


@FUZZ
@given(
    body=st.binary(max_size=512), content_type=st.sampled_from(["application/x-protobuf", "application/json", "x/y"])
)
def test_random_bytes_to_otlp_receivers(body: bytes, content_type: str) -> None:
    for call, _ in OTLP:
        only_invalid_payload(lambda call=call: call(body, content_type))  # type: ignore[misc]


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), min_size=1, max_size=6))
def test_mutated_otlp_protobuf_requests(edits: list[tuple[int, int]]) -> None:
    for call, seed in OTLP:
        only_invalid_payload(lambda call=call, seed=seed: call(mutate(seed, edits), "application/x-protobuf"))  # type: ignore[misc]


@FUZZ
@given(document=json_values)
def test_random_json_to_otlp_receivers(document: Any) -> None:
    body = json.dumps(document).encode()
    for call, _ in OTLP:
        only_invalid_payload(lambda call=call: call(body, "application/json"))  # type: ignore[misc]


@FUZZ
@given(
    spans=st.lists(
        st.dictionaries(
            st.sampled_from(["traceId", "spanId", "parentSpanId", "name", "kind", "startTimeUnixNano", "status"]),
            json_values,
        ),
        max_size=3,
    )
)
def test_otlp_json_shaped_like_spans(spans: list[dict[str, Any]]) -> None:
    body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}).encode()
    only_invalid_payload(lambda: traces_body(body, "application/json"))


@FUZZ
@given(body=st.binary(max_size=512), compress=st.booleans())
def test_random_bytes_to_remote_write(body: bytes, compress: bool) -> None:
    data = bytes(cramjam.snappy.compress_raw(body)) if compress else body
    only_invalid_payload(lambda: remote_write_body(data))


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), min_size=1, max_size=6))
def test_mutated_remote_write_requests(edits: list[tuple[int, int]]) -> None:
    only_invalid_payload(
        lambda: remote_write_body(bytes(cramjam.snappy.compress_raw(mutate(SEED_REMOTE_WRITE, edits))))
    )


@FUZZ
@given(body=st.binary(max_size=256) | json_values.map(lambda d: json.dumps(d).encode()))
def test_random_bodies_to_json_apis(body: bytes) -> None:
    for call in JSON_APIS:
        only_invalid_payload(lambda call=call: call(body))  # type: ignore[misc]


@FUZZ
@given(
    samples=st.lists(
        st.fixed_dictionaries(
            {"name": st.text(max_size=8), "value": json_values},
            optional={"labels": json_values, "timestamp": json_values, "kind": json_values},
        ),
        max_size=4,
    )
)
def test_json_metric_samples_with_random_fields(samples: list[dict[str, Any]]) -> None:
    body = json.dumps({"samples": samples}).encode()
    only_invalid_payload(lambda: JSON_APIS[0](body))
