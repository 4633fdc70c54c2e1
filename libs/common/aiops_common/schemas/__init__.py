"""Versioned record schemas that travel on the topics, with their wire codec."""

from __future__ import annotations

from aiops_common.schemas._codec import SchemaError, decode_envelope, encode_envelope, envelope_schema
from aiops_common.schemas._ids import record_id
from aiops_common.schemas.actions import (
    ApprovalDecision,
    ApprovalRecord,
    BlastRadius,
    Decision,
    ExecutionRecord,
    ExecutionStatus,
    StepPhase,
    StepRecord,
    StepState,
    Transition,
    VerificationRecord,
    execution_document,
    execution_id,
)
from aiops_common.schemas.alerts import AlertRecord, AlertStatus
from aiops_common.schemas.anomalies import AnomalyRecord, AnomalySeverity, anomaly_id
from aiops_common.schemas.changes import ChangeEvent
from aiops_common.schemas.config import (
    DetectionConfig,
    DetectionConfigVersion,
    SensitivityOverride,
    StaticRule,
    config_doc_id,
)
from aiops_common.schemas.features import FEATURE_COLUMNS, FeatureBatch, FeatureRow
from aiops_common.schemas.feedback import FeedbackLabel, FeedbackRecord
from aiops_common.schemas.incidents import (
    CorrelationBatch,
    CorrelationTick,
    IncidentCommand,
    IncidentMember,
    IncidentMerge,
    IncidentRecord,
    IncidentSeverity,
    IncidentStatus,
    JoinReason,
    LinkedChange,
    MemberKind,
    StatusChange,
    incident_id,
)
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
from aiops_common.schemas.predictions import CrossingDirection, PredictionRecord, prediction_id
from aiops_common.schemas.rca import (
    CauseKind,
    Evidence,
    EvidenceKind,
    MetricFinding,
    RankedCause,
    RcaResult,
    RcaStatus,
    rca_result_id,
)
from aiops_common.schemas.topology import TopologyEdge
from aiops_common.schemas.traces import Span, SpanBatch

__all__ = [
    "FEATURE_COLUMNS",
    "STALE_NAN",
    "AlertRecord",
    "AlertStatus",
    "AnomalyRecord",
    "AnomalySeverity",
    "ApprovalDecision",
    "ApprovalRecord",
    "BlastRadius",
    "CauseKind",
    "ChangeEvent",
    "CorrelationBatch",
    "CorrelationTick",
    "CrossingDirection",
    "Decision",
    "DetectionConfig",
    "DetectionConfigVersion",
    "Evidence",
    "EvidenceKind",
    "ExecutionRecord",
    "ExecutionStatus",
    "FeatureBatch",
    "FeatureRow",
    "FeedbackLabel",
    "FeedbackRecord",
    "IncidentCommand",
    "IncidentMember",
    "IncidentMerge",
    "IncidentRecord",
    "IncidentSeverity",
    "IncidentStatus",
    "JoinReason",
    "LinkedChange",
    "LogBatch",
    "LogRecord",
    "MemberKind",
    "MetricBatch",
    "MetricBatchBuilder",
    "MetricFinding",
    "MetricKind",
    "PredictionRecord",
    "RankedCause",
    "RcaResult",
    "RcaStatus",
    "SchemaError",
    "SensitivityOverride",
    "SeriesMeta",
    "Span",
    "SpanBatch",
    "StaticRule",
    "StatusChange",
    "StepPhase",
    "StepRecord",
    "StepState",
    "TopologyEdge",
    "Transition",
    "VerificationRecord",
    "anomaly_id",
    "config_doc_id",
    "decode_envelope",
    "encode_envelope",
    "envelope_schema",
    "execution_document",
    "execution_id",
    "incident_id",
    "is_stale_marker",
    "prediction_id",
    "rca_result_id",
    "record_id",
    "series_key",
]
