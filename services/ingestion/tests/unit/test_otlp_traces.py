"""OTLP spans normalize with hex ids, kinds, statuses and labels, and malformed spans are refused."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest
from aiops_common.schemas import Span
from aiops_ingestion.normalize import Enricher, InvalidPayloadError, Limits, normalize_otlp_traces
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1 import trace_pb2

pytestmark = pytest.mark.unit

NOW_MS = 1_700_000_000_000
NOW_NS = NOW_MS * 1_000_000
TRACE = bytes.fromhex("5b8efff798038103d269b633813fc60c")
ROOT = bytes.fromhex("eee19b7ec3c1b173")
CHILD = bytes.fromhex("eee19b7ec3c1b174")
Attrs = Callable[[Mapping[str, object]], list[KeyValue]]


def request(attrs: Attrs, *spans: trace_pb2.Span, service: str = "frontend") -> Any:
    return ExportTraceServiceRequest(
        resource_spans=[
            trace_pb2.ResourceSpans(
                resource=Resource(attributes=attrs({"service.name": service, "k8s.namespace.name": "shop"})),
                scope_spans=[trace_pb2.ScopeSpans(scope=InstrumentationScope(name="http"), spans=spans)],
            )
        ]
    )


def span(name: str = "GET /", **fields: Any) -> trace_pb2.Span:
    fields.setdefault("trace_id", TRACE)
    fields.setdefault("span_id", ROOT)
    fields.setdefault("start_time_unix_nano", NOW_NS - 2_000_000)
    fields.setdefault("end_time_unix_nano", NOW_NS)
    return trace_pb2.Span(name=name, **fields)


def normalize(req: Any, enricher: Enricher | None = None) -> list[Span]:
    return normalize_otlp_traces(req, Limits(), enricher or Enricher(), now_ms=NOW_MS)


def refused(req: Any) -> InvalidPayloadError:
    with pytest.raises(InvalidPayloadError) as caught:
        normalize(req)
    assert caught.value.status_code == 400
    return caught.value


def test_parent_and_child_spans_map_onto_the_span_schema(attrs: Attrs) -> None:
    root = span("GET /checkout", kind=trace_pb2.Span.SPAN_KIND_SERVER, attributes=attrs({"http.route": "/checkout"}))
    child = span(
        "charge",
        span_id=CHILD,
        parent_span_id=ROOT,
        kind=trace_pb2.Span.SPAN_KIND_CLIENT,
        status=trace_pb2.Status(code=trace_pb2.Status.STATUS_CODE_ERROR, message="card declined"),
    )
    got_root, got_child = normalize(request(attrs, root, child))
    assert got_root == Span(
        trace_id=TRACE.hex(),
        span_id=ROOT.hex(),
        parent_span_id="",
        service="frontend",
        name="GET /checkout",
        kind="SERVER",
        start_ns=NOW_NS - 2_000_000,
        end_ns=NOW_NS,
        status="UNSET",
        labels={"k8s_namespace_name": "shop", "http_route": "/checkout"},
    )
    assert (got_child.parent_span_id, got_child.kind, got_child.status) == (ROOT.hex(), "CLIENT", "ERROR")
    assert got_child.labels["status_message"] == "card declined"
    assert got_child.duration_s == pytest.approx(0.002)


@pytest.mark.parametrize(
    ("kind", "name"),
    [(0, "UNSPECIFIED"), (1, "INTERNAL"), (2, "SERVER"), (3, "CLIENT"), (4, "PRODUCER"), (5, "CONSUMER")],
)
def test_kind_names_drop_the_prefix(attrs: Attrs, kind: int, name: str) -> None:
    assert normalize(request(attrs, span(kind=kind)))[0].kind == name


def test_ok_status(attrs: Attrs) -> None:
    ok = trace_pb2.Status(code=trace_pb2.Status.STATUS_CODE_OK)
    assert normalize(request(attrs, span(status=ok)))[0].status == "OK"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"trace_id": b""}, "trace_id is missing or all zero"),
        ({"trace_id": bytes(16)}, "trace_id is missing or all zero"),
        ({"trace_id": b"\x01" * 8}, "trace_id has 8 bytes, not 16"),
        ({"span_id": b""}, "span_id is missing or all zero"),
        ({"parent_span_id": b"\x01\x02"}, "parent_span_id has 2 bytes, not 8"),
        ({"kind": 9}, "span kind 9 is not a known SpanKind"),
        ({"status": trace_pb2.Status(code=7)}, "status code 7"),  # type: ignore[arg-type]
        ({"start_time_unix_nano": 0}, "start: timestamp 0 is not a valid time"),
        ({"end_time_unix_nano": NOW_NS - 3_000_000}, "is before start time"),
        ({"start_time_unix_nano": NOW_NS + 10**12, "end_time_unix_nano": NOW_NS + 10**12}, "ahead of the server"),
    ],
)
def test_malformed_spans_are_refused(attrs: Attrs, fields: dict[str, Any], message: str) -> None:
    error = refused(request(attrs, span("bad span", **fields)))
    assert message in error.message and "span 'bad span' of service 'frontend'" in error.message


def test_enricher_adds_labels_to_spans_of_the_service(attrs: Attrs) -> None:
    enricher = Enricher.from_mapping({"frontend": {"tier": "web"}})
    assert normalize(request(attrs, span()), enricher)[0].labels["tier"] == "web"
