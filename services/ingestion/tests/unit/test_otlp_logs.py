"""OTLP log records normalize with severity bands, bodies, ids, labels and time fallbacks."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest
from aiops_common.schemas import LogRecord
from aiops_ingestion.normalize import Enricher, InvalidPayloadError, Limits, normalize_otlp_logs
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, InstrumentationScope, KeyValue
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

pytestmark = pytest.mark.unit

NOW_MS = 1_700_000_000_000
NOW_NS = NOW_MS * 1_000_000
Attrs = Callable[[Mapping[str, object]], list[KeyValue]]


def request(attrs: Attrs, *records: logs_pb2.LogRecord, resource: Mapping[str, object] | None = None) -> Any:
    return ExportLogsServiceRequest(
        resource_logs=[
            logs_pb2.ResourceLogs(
                resource=Resource(attributes=attrs({"service.name": "payments"} if resource is None else resource)),
                scope_logs=[logs_pb2.ScopeLogs(scope=InstrumentationScope(name="app"), log_records=records)],
            )
        ]
    )


def record(body: str = "hello", **fields: Any) -> logs_pb2.LogRecord:
    fields.setdefault("time_unix_nano", NOW_NS)
    return logs_pb2.LogRecord(body=AnyValue(string_value=body), **fields)


def normalize(req: Any, limits: Limits | None = None, enricher: Enricher | None = None) -> list[LogRecord]:
    return normalize_otlp_logs(req, limits or Limits(), enricher or Enricher(), now_ms=NOW_MS)


def test_record_fields_map_onto_the_log_schema(attrs: Attrs) -> None:
    trace_id, span_id = bytes(range(16)), bytes(range(8, 16))
    req = request(
        attrs,
        record(
            "payment p-42 failed",
            severity_number=logs_pb2.SEVERITY_NUMBER_ERROR,
            severity_text="ERROR",
            trace_id=trace_id,
            span_id=span_id,
            attributes=attrs({"payment.id": "p-42", "attempt": 2}),
        ),
        resource={"service.name": "payments", "host.name": "n1"},
    )
    assert normalize(req) == [
        LogRecord(
            ts_ns=NOW_NS,
            service="payments",
            body="payment p-42 failed",
            severity="ERROR",
            severity_number=17,
            labels={"host": "n1", "payment_id": "p-42", "attempt": "2"},
            trace_id=trace_id.hex(),
            span_id=span_id.hex(),
        )
    ]


@pytest.mark.parametrize(
    ("number", "band"),
    [(1, "TRACE"), (5, "DEBUG"), (8, "DEBUG"), (9, "INFO"), (13, "WARN"), (20, "ERROR"), (21, "FATAL"), (24, "FATAL")],
)
def test_severity_numbers_fall_into_bands_of_four(attrs: Attrs, number: int, band: str) -> None:
    (got,) = normalize(request(attrs, record(severity_number=number)))
    assert (got.severity, got.severity_number) == (band, number)


@pytest.mark.parametrize(
    ("text", "band", "number"),
    [
        ("warning", "WARN", 13),
        ("ERROR3", "ERROR", 19),
        ("Info", "INFO", 9),
        ("critical", "FATAL", 21),
        ("loud", "UNSPECIFIED", 0),
    ],
)
def test_severity_text_decides_when_the_number_is_unset(attrs: Attrs, text: str, band: str, number: int) -> None:
    (got,) = normalize(request(attrs, record(severity_text=text)))
    assert (got.severity, got.severity_number) == (band, number)


def test_severity_number_outside_the_enum_is_refused(attrs: Attrs) -> None:
    with pytest.raises(InvalidPayloadError, match=r"severity number 25 is outside 1\.\.24"):
        normalize(request(attrs, record(severity_number=25)))


def test_structured_bodies_become_json(attrs: Attrs) -> None:
    body = AnyValue(array_value=ArrayValue(values=[AnyValue(int_value=1), AnyValue(string_value="a")]))
    (got,) = normalize(request(attrs, logs_pb2.LogRecord(time_unix_nano=NOW_NS, body=body)))
    assert got.body == '[1,"a"]'


def test_observed_time_then_receive_time_stand_in_for_a_missing_time(attrs: Attrs) -> None:
    observed = record(time_unix_nano=0, observed_time_unix_nano=NOW_NS - 5)
    neither = record(time_unix_nano=0)
    assert [r.ts_ns for r in normalize(request(attrs, observed, neither))] == [NOW_NS - 5, NOW_NS]


def test_time_outside_the_window_is_refused(attrs: Attrs) -> None:
    with pytest.raises(InvalidPayloadError, match="ahead of the server clock") as caught:
        normalize(request(attrs, record(time_unix_nano=NOW_NS + 3600 * 10**9)))
    assert "log record 0 of service 'payments'" in caught.value.message


def test_missing_service_name_is_unknown_service(attrs: Attrs) -> None:
    assert normalize(request(attrs, record(), resource={}))[0].service == "unknown_service"


def test_long_attribute_values_are_cut_not_refused(attrs: Attrs) -> None:
    req = request(attrs, record(attributes=attrs({"exception.stacktrace": "x" * 100})))
    (got,) = normalize(req, Limits(max_label_value_length=10))
    assert got.labels["exception_stacktrace"] == "xxxxxxx..."


def test_too_many_attributes_are_refused(attrs: Attrs) -> None:
    with pytest.raises(InvalidPayloadError, match="3 labels, more than the limit of 2"):
        normalize(request(attrs, record(attributes=attrs({"a": 1, "b": 2, "c": 3}))), Limits(max_labels_per_series=2))


@pytest.mark.parametrize(
    ("fields", "message"),
    [({"trace_id": b"\x01" * 15}, "trace_id has 15 bytes, not 16"), ({"span_id": b"\x01" * 9}, "span_id has 9 bytes")],
)
def test_malformed_ids_are_refused(attrs: Attrs, fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidPayloadError, match=message):
        normalize(request(attrs, record(**fields)))


def test_all_zero_ids_mean_no_trace_context(attrs: Attrs) -> None:
    (got,) = normalize(request(attrs, record(trace_id=bytes(16), span_id=bytes(8))))
    assert (got.trace_id, got.span_id) == ("", "")


def test_enricher_adds_labels_to_logs_of_the_service(attrs: Attrs) -> None:
    enricher = Enricher.from_mapping({"payments": {"team": "pay", "zone": "a"}})
    (got,) = normalize(request(attrs, record(attributes=attrs({"zone": "b"}))), enricher=enricher)
    assert got.labels == {"team": "pay", "zone": "b"}
