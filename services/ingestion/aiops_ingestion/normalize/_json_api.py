"""The platform's own JSON write APIs: ``POST /api/v1/metrics/write`` and ``POST /api/v1/logs/write``."""

from __future__ import annotations

import json
from typing import Annotated, Self

from aiops_common.schemas import LogRecord, MetricBatchBuilder, MetricKind, series_key
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, JsonValue, WithJsonSchema, model_validator

from aiops_ingestion.normalize._enricher import Enricher
from aiops_ingestion.normalize._errors import InvalidPayloadError, Rejections
from aiops_ingestion.normalize._json_body import parse_json_body
from aiops_ingestion.normalize._labels import LabelChecker
from aiops_ingestion.normalize._limits import Limits
from aiops_ingestion.normalize._remote_write import metric_kind, metric_name_problem
from aiops_ingestion.normalize._severity import severity_band, severity_number_from_text
from aiops_ingestion.normalize._timestamps import parse_timestamp_ns

__all__ = [
    "LogEntry",
    "LogsWrite",
    "MetricSample",
    "MetricsWrite",
    "Timestamp",
    "parse_logs_write",
    "parse_metrics_write",
]

Timestamp = Annotated[
    int,
    BeforeValidator(parse_timestamp_ns),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string", "format": "date-time"}, {"type": "number"}],
            "description": "RFC 3339 with an offset, or Unix seconds or milliseconds",
            "examples": ["2024-05-01T12:00:00Z", 1714564800],
        }
    ),
]
"""Unix nanoseconds, sent as RFC 3339 (``2024-05-01T12:00:00Z``) or Unix seconds or milliseconds."""

_INFO = 9


def _severity_number(level: object) -> int:
    """A level name (``warning``, ``ERROR``) or an OTLP severity number 1-24."""
    if isinstance(level, bool):
        raise ValueError("level must be a name such as 'error' or a severity number 1-24")
    if isinstance(level, int):
        severity_band(level)  # raises outside 0..24
        if level == 0:
            raise ValueError("severity number 0 means unspecified; leave the level out instead")
        return level
    if isinstance(level, str):
        number = severity_number_from_text(level)
        if number is None:
            raise ValueError(f"unknown level {level!r} (use trace, debug, info, warn, error or fatal)")
        return number
    raise ValueError("level must be a name such as 'error' or a severity number 1-24")


SeverityNumber = Annotated[
    int,
    BeforeValidator(_severity_number),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string"}, {"type": "integer", "minimum": 1, "maximum": 24}],
            "description": "a level name (trace, debug, info, warn, error, fatal) or an OTLP severity number",
        }
    ),
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


class MetricSample(_Body):
    name: str = Field(min_length=1)
    labels: dict[str, str] = Field(default_factory=dict)
    value: float = Field(allow_inf_nan=False)
    timestamp: Timestamp | None = None
    """Absent: the time the request is received."""
    kind: MetricKind | None = None
    """Absent: from the name's suffix, as for remote write (``_total`` is a counter, ...)."""
    unit: str = ""


class MetricsWrite(_Body):
    samples: list[MetricSample]


class LogEntry(_Body):
    service: str = Field(min_length=1)
    message: JsonValue = None
    body: JsonValue = None
    """Either ``message`` or ``body``: a string, or any JSON value (stored as compact JSON)."""
    level: SeverityNumber | None = None
    severity: SeverityNumber | None = None
    """Either ``level`` or ``severity``: a name or an OTLP severity number. Absent: INFO."""
    timestamp: Timestamp | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    trace_id: str = Field("", pattern=r"^(?:[0-9a-fA-F]{32})?$")
    span_id: str = Field("", pattern=r"^(?:[0-9a-fA-F]{16})?$")

    @model_validator(mode="after")
    def _one_of_each(self) -> Self:
        if (self.message is None) == (self.body is None):
            raise ValueError("give the log text as exactly one of 'message' or 'body'")
        if self.level is not None and self.severity is not None:
            raise ValueError("give at most one of 'level' or 'severity'")
        return self


class LogsWrite(_Body):
    logs: list[LogEntry]


def parse_metrics_write(
    body: bytes,
    limits: Limits,
    enricher: Enricher,
    partitions: int,
    *,
    content_type: str | None = None,
    now_ms: int | None = None,
) -> MetricBatchBuilder:
    """``{"samples": [{"name": "cpu", "labels": {"service": "api"}, "value": 0.5, "timestamp": ...}]}``.

    Names and labels must already be valid Prometheus names (nothing is rewritten).
    """
    payload = parse_json_body(MetricsWrite, body, content_type, "metrics write body")
    window = limits.window(now_ms)
    checker = LabelChecker(limits)
    rejections = Rejections("samples")
    builder = MetricBatchBuilder(partitions)
    for index, sample in enumerate(payload.samples):
        ts_ms = window.now_ms if sample.timestamp is None else sample.timestamp // 1_000_000
        problem = metric_name_problem(sample.name) or checker.problem(sample.labels) or window.problem_ms(ts_ms)
        if problem:
            rejections.add(f"samples[{index}] {series_key(sample.name, sample.labels)}", problem)
            continue
        labels = dict(sample.labels)
        enricher.enrich(labels.get("service", ""), labels)
        kind = sample.kind or metric_kind(sample.name, {})
        builder.add(sample.name, labels, ts_ms, sample.value, kind, sample.unit)
    rejections.raise_if_any(len(payload.samples))
    if builder.series_count > limits.max_series_per_request:
        raise InvalidPayloadError(
            f"request has {builder.series_count} series, more than the limit of {limits.max_series_per_request}", 413
        )
    return builder


def parse_logs_write(
    body: bytes,
    limits: Limits,
    enricher: Enricher,
    *,
    content_type: str | None = None,
    now_ms: int | None = None,
) -> list[LogRecord]:
    """``{"logs": [{"service": "api", "message": "...", "level": "error", "timestamp": ..., "labels": {...}}]}``."""
    payload = parse_json_body(LogsWrite, body, content_type, "logs write body")
    window = limits.window(now_ms)
    checker = LabelChecker(limits)
    rejections = Rejections("log records")
    records: list[LogRecord] = []
    for index, entry in enumerate(payload.logs):
        labels = dict(entry.labels)
        ts_ns = window.now_ms * 1_000_000 if entry.timestamp is None else entry.timestamp
        problem = checker.problem_truncating(labels) or window.problem_ns(ts_ns)
        if problem:
            rejections.add(f"logs[{index}] of service {entry.service!r}", problem)
            continue
        text = entry.message if entry.message is not None else entry.body
        number = entry.level or entry.severity or _INFO
        enricher.enrich(entry.service, labels)
        records.append(
            LogRecord(
                ts_ns=ts_ns,
                service=entry.service,
                body=text if isinstance(text, str) else json.dumps(text, separators=(",", ":"), ensure_ascii=False),
                severity=severity_band(number),
                severity_number=number,
                labels=labels,
                trace_id=entry.trace_id.lower(),
                span_id=entry.span_id.lower(),
            )
        )
    rejections.raise_if_any(len(payload.logs))
    return records
