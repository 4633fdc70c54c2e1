"""Versioned record schemas that travel on the topics, with their wire codec."""

from __future__ import annotations

from aiops_common.schemas._codec import SchemaError, decode_envelope, encode_envelope
from aiops_common.schemas.alerts import AlertRecord, AlertStatus
from aiops_common.schemas.changes import ChangeEvent
from aiops_common.schemas.logs import LogBatch, LogRecord
from aiops_common.schemas.metrics import MetricBatch, MetricBatchBuilder, MetricKind, SeriesMeta, series_key
from aiops_common.schemas.traces import Span, SpanBatch

__all__ = [
    "AlertRecord",
    "AlertStatus",
    "ChangeEvent",
    "LogBatch",
    "LogRecord",
    "MetricBatch",
    "MetricBatchBuilder",
    "MetricKind",
    "SchemaError",
    "SeriesMeta",
    "Span",
    "SpanBatch",
    "decode_envelope",
    "encode_envelope",
    "series_key",
]
