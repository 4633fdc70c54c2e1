"""OTLP spans into the shared span schema."""

from __future__ import annotations

import functools

from aiops_common.schemas import Span
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1 import trace_pb2

from aiops_ingestion.normalize._enricher import Enricher
from aiops_ingestion.normalize._errors import Refused, Rejections
from aiops_ingestion.normalize._labels import LabelChecker
from aiops_ingestion.normalize._limits import Limits
from aiops_ingestion.normalize._otlp_attributes import attribute_labels
from aiops_ingestion.normalize._otlp_ids import SPAN_ID_BYTES, TRACE_ID_BYTES, hex_id
from aiops_ingestion.normalize._otlp_rows import convert_rows
from aiops_ingestion.normalize._timestamps import TimeWindow

__all__ = ["normalize_otlp_traces"]

_KINDS = {v.number: v.name.removeprefix("SPAN_KIND_") for v in trace_pb2.Span.SpanKind.DESCRIPTOR.values}
_STATUSES = {v.number: v.name.removeprefix("STATUS_CODE_") for v in trace_pb2.Status.StatusCode.DESCRIPTOR.values}


def normalize_otlp_traces(
    request: ExportTraceServiceRequest,
    limits: Limits,
    enricher: Enricher,
    *,
    now_ms: int | None = None,
    rejections: Rejections | None = None,
) -> list[Span]:
    """Every span of an OTLP export request.

    Ids become lowercase hex (a root span's parent is ``''``); kinds lose their
    ``SPAN_KIND_`` prefix (``SERVER``); the status is ``UNSET``, ``OK`` or ``ERROR``
    and a status message becomes the ``status_message`` label. A span needs a
    16-byte trace id, an 8-byte span id, a start time in the window and an end
    no earlier than its start.
    """
    groups = (
        (resource_spans.resource.attributes, scope_spans.scope.attributes, scope_spans.spans)
        for resource_spans in request.resource_spans
        for scope_spans in resource_spans.scope_spans
    )
    convert = functools.partial(_span, window=limits.window(now_ms), checker=LabelChecker(limits), enricher=enricher)
    return convert_rows(groups, convert, _describe, Rejections("spans") if rejections is None else rejections)


def _describe(index: int, span: trace_pb2.Span, service: str) -> str:
    return f"span {span.name[:60]!r} of service {service!r}"


def _span(
    span: trace_pb2.Span,
    service: str,
    sender: dict[str, str],
    *,
    window: TimeWindow,
    checker: LabelChecker,
    enricher: Enricher,
) -> Span:
    trace_id = hex_id(span.trace_id, TRACE_ID_BYTES, "trace_id", required=True)
    span_id = hex_id(span.span_id, SPAN_ID_BYTES, "span_id", required=True)
    parent_span_id = hex_id(span.parent_span_id, SPAN_ID_BYTES, "parent_span_id", required=False)
    kind = _KINDS.get(span.kind)
    if kind is None:
        raise Refused(f"span kind {span.kind} is not a known SpanKind")
    status = _STATUSES.get(span.status.code)
    if status is None:
        raise Refused(f"status code {span.status.code} is not a known StatusCode")
    start, end = span.start_time_unix_nano, span.end_time_unix_nano
    problem = window.problem_ns(start)
    if problem:
        raise Refused(f"start: {problem}")
    if end < start:
        raise Refused(f"end time {end} is before start time {start}")
    labels = sender | attribute_labels(span.attributes) if span.attributes else dict(sender)
    if span.status.message:
        labels.setdefault("status_message", span.status.message)
    problem = checker.problem_truncating(labels)
    if problem:
        raise Refused(problem)
    enricher.enrich(service, labels)
    return Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent_span_id,
        service=service,
        name=span.name,
        kind=kind,
        start_ns=start,
        end_ns=end,
        status=status,
        labels=labels,
    )
