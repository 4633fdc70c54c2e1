"""Log records, normalized from OTLP logs and the JSON log API: the value type of ``logs.raw``."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiops_common.schemas._records import RowBatch

__all__ = ["SEVERITY_NAMES", "LogBatch", "LogRecord"]

# OTLP severity numbers 1-24 fall into six named bands of four.
SEVERITY_NAMES = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")


@dataclass(slots=True)
class LogRecord:
    ts_ns: int
    service: str
    body: str
    severity: str = "INFO"  # one of SEVERITY_NAMES, or UNSPECIFIED
    severity_number: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    trace_id: str = ""
    span_id: str = ""


class LogBatch(RowBatch[LogRecord]):
    schema = "logs.batch"
    row_type = LogRecord
