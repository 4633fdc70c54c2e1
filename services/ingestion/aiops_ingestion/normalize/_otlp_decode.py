"""OTLP/HTTP request bodies (binary protobuf or OTLP/JSON) into OTLP export request messages."""

from __future__ import annotations

import base64
import json
import re
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from aiops_ingestion.normalize._content_type import otlp_format
from aiops_ingestion.normalize._errors import InvalidPayloadError
from aiops_ingestion.normalize._otlp_metrics_view import ExportMetricsView

__all__ = ["parse_otlp_logs", "parse_otlp_metrics", "parse_otlp_traces"]

M = TypeVar("M", bound=Message)

# OTLP/JSON writes these bytes fields as hex, where protobuf's JSON mapping expects base64.
_HEX_ID_FIELDS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"})
_HEX = re.compile(r"(?:[0-9a-fA-F]{2})*")


def parse_otlp_metrics(body: bytes, content_type: str) -> Any:
    """An OTLP/HTTP ``/v1/metrics`` body, already stripped of its Content-Encoding.

    The result is an :data:`ExportMetricsView`: the export request with its
    resources, scopes and number points left as bytes, which
    :func:`normalize_otlp_metrics` reads (and checks) only as far as it needs.
    """
    if otlp_format(content_type, "OTLP metrics") == "protobuf":
        return _parse(body, content_type, ExportMetricsView(), "OTLP metrics")
    message = _parse(body, content_type, ExportMetricsServiceRequest(), "OTLP metrics")
    return ExportMetricsView.FromString(message.SerializeToString())


def parse_otlp_logs(body: bytes, content_type: str) -> ExportLogsServiceRequest:
    """An OTLP/HTTP ``/v1/logs`` body, already stripped of its Content-Encoding."""
    return _parse(body, content_type, ExportLogsServiceRequest(), "OTLP logs")


def parse_otlp_traces(body: bytes, content_type: str) -> ExportTraceServiceRequest:
    """An OTLP/HTTP ``/v1/traces`` body, already stripped of its Content-Encoding."""
    return _parse(body, content_type, ExportTraceServiceRequest(), "OTLP traces")


def _parse(body: bytes, content_type: str, message: M, what: str) -> M:
    if otlp_format(content_type, what) == "protobuf":
        try:
            message.ParseFromString(body)
        except DecodeError as exc:
            raise InvalidPayloadError(f"{what}: body is not a valid protobuf {type(message).__name__}: {exc}") from None
        return message
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise InvalidPayloadError(f"{what}: body is not valid JSON: {_first_line(exc)}") from None
    if not isinstance(document, dict):
        raise InvalidPayloadError(f"{what}: an OTLP/JSON body must be a JSON object")
    _hex_ids_to_base64(document, what)
    try:
        # OTLP/JSON receivers must ignore unknown fields (forward compatibility).
        json_format.ParseDict(document, message, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        raise InvalidPayloadError(f"{what}: body is not valid OTLP/JSON: {_first_line(exc)}") from None
    return message


def _hex_ids_to_base64(document: dict[str, object], what: str) -> None:
    """Rewrite hex trace/span ids in place as base64, the form ``json_format`` reads into bytes."""
    stack: list[object] = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(value, str) and key in _HEX_ID_FIELDS:
                    if not _HEX.fullmatch(value):
                        raise InvalidPayloadError(
                            f"{what}: {key} {value[:40]!r} is not hex (OTLP/JSON writes trace and span ids as hex)"
                        )
                    node[key] = base64.b64encode(bytes.fromhex(value)).decode("ascii")
                elif isinstance(value, dict | list):
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(item for item in node if isinstance(item, dict | list))


def _first_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:300]
