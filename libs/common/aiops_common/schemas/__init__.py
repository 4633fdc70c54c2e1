"""Versioned record schemas that travel on the topics, with their wire codec."""

from __future__ import annotations

from aiops_common.schemas._codec import SchemaError, decode_envelope, encode_envelope
from aiops_common.schemas.alerts import AlertRecord, AlertStatus
from aiops_common.schemas.changes import ChangeEvent
from aiops_common.schemas.features import FEATURE_COLUMNS, FeatureBatch, FeatureRow
from aiops_common.schemas.logs import LogBatch, LogRecord
from aiops_common.schemas.metrics import (
    STALE_NAN,
    MetricBatch,
    MetricBatchBuilder,
    MetricKind,
    SeriesMeta,
    is_stale_marker,
    series_key,
)
from aiops_common.schemas.topology import TopologyEdge
from aiops_common.schemas.traces import Span, SpanBatch

__all__ = [
    "FEATURE_COLUMNS",
    "STALE_NAN",
    "AlertRecord",
    "AlertStatus",
    "ChangeEvent",
    "FeatureBatch",
    "FeatureRow",
    "LogBatch",
    "LogRecord",
    "MetricBatch",
    "MetricBatchBuilder",
    "MetricKind",
    "SchemaError",
    "SeriesMeta",
    "Span",
    "SpanBatch",
    "TopologyEdge",
    "decode_envelope",
    "encode_envelope",
    "is_stale_marker",
    "series_key",
]
