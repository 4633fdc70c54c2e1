"""OTLP log records into the shared log record schema."""

from __future__ import annotations

import functools

from aiops_common.schemas import LogRecord
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1 import logs_pb2

from aiops_ingestion.normalize._enricher import Enricher
from aiops_ingestion.normalize._errors import Refused, Rejections
from aiops_ingestion.normalize._labels import LabelChecker
from aiops_ingestion.normalize._limits import Limits
from aiops_ingestion.normalize._otlp_attributes import attribute_labels, render_value
from aiops_ingestion.normalize._otlp_ids import SPAN_ID_BYTES, TRACE_ID_BYTES, hex_id
from aiops_ingestion.normalize._otlp_rows import convert_rows
from aiops_ingestion.normalize._severity import UNSPECIFIED, severity_band, severity_number_from_text
from aiops_ingestion.normalize._timestamps import TimeWindow

__all__ = ["normalize_otlp_logs"]


def normalize_otlp_logs(
    request: ExportLogsServiceRequest,
    limits: Limits,
    enricher: Enricher,
    *,
    now_ms: int | None = None,
    rejections: Rejections | None = None,
) -> list[LogRecord]:
    """Every log record of an OTLP export request.

    - time: ``time_unix_nano``, else ``observed_time_unix_nano``, else the receive
      time (as the OTLP spec asks of receivers); a set time must be in the window.
    - severity: the number's band (17-20 -> ERROR); with number 0, a known
      ``severity_text`` (``warning``, ``ERROR2``) decides; else ``UNSPECIFIED``.
    - body: strings as they are, other values as JSON.
    - labels: resource (``service.name`` goes to ``service``), scope and record
      attributes; values longer than the limit are cut rather than refused.
    """
    groups = (
        (resource_logs.resource.attributes, scope_logs.scope.attributes, scope_logs.log_records)
        for resource_logs in request.resource_logs
        for scope_logs in resource_logs.scope_logs
    )
    convert = functools.partial(_record, window=limits.window(now_ms), checker=LabelChecker(limits), enricher=enricher)
    return convert_rows(groups, convert, _describe, Rejections("log records") if rejections is None else rejections)


def _describe(index: int, record: logs_pb2.LogRecord, service: str) -> str:
    return f"log record {index} of service {service!r}"


def _record(
    record: logs_pb2.LogRecord,
    service: str,
    sender: dict[str, str],
    *,
    window: TimeWindow,
    checker: LabelChecker,
    enricher: Enricher,
) -> LogRecord:
    labels = sender | attribute_labels(record.attributes) if record.attributes else dict(sender)
    problem = checker.problem_truncating(labels)
    if problem:
        raise Refused(problem)
    ts_ns = record.time_unix_nano or record.observed_time_unix_nano
    if ts_ns:
        problem = window.problem_ns(ts_ns)
        if problem:
            raise Refused(problem)
    else:
        ts_ns = window.now_ms * 1_000_000
    number: int = record.severity_number
    try:
        severity = severity_band(number)
    except ValueError as exc:
        raise Refused(str(exc)) from None
    if severity == UNSPECIFIED and record.severity_text:
        number = severity_number_from_text(record.severity_text) or 0
        severity = severity_band(number)
    enricher.enrich(service, labels)
    return LogRecord(
        ts_ns=ts_ns,
        service=service,
        body=render_value(record.body),
        severity=severity,
        severity_number=number,
        labels=labels,
        trace_id=hex_id(record.trace_id, TRACE_ID_BYTES, "trace_id", required=False),
        span_id=hex_id(record.span_id, SPAN_ID_BYTES, "span_id", required=False),
    )
