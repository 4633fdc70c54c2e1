"""The topic table: every topic's name, key, value type, partitions and retention, in one place.

Nothing else in the code base spells a topic name. Deployments may prefix every
name (``AIOPS_TOPIC_PREFIX``) so several installations, or tests, share a broker.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from aiops_common.schemas import (
    AlertRecord,
    AnomalyRecord,
    ApprovalRecord,
    ChangeEvent,
    ExecutionRecord,
    FeatureBatch,
    FeedbackRecord,
    IncidentRecord,
    LogBatch,
    MetricBatch,
    PredictionRecord,
    RcaResult,
    SpanBatch,
    TopologyEdge,
)

if TYPE_CHECKING:
    import faust

__all__ = ["ALL_TOPICS", "CORRELATION_EVENTS_KEY", "TopicSpec", "Topics"]


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    key: str  # what the message key holds, for people and for partitioning
    value_type: type[Any] | None  # schema class with encode()/decode(); None: not yet defined
    partitions: int
    retention: timedelta
    batched: bool  # True: one message carries many samples/rows
    description: str

    def full_name(self, prefix: str = "") -> str:
        return f"{prefix}{self.name}"


_HOUR = timedelta(hours=1)
_DAY = timedelta(days=1)


class Topics:
    """Namespace of every topic the platform uses, by layer."""

    # Layer 1: ingestion
    METRICS_RAW = TopicSpec(
        "metrics.raw",
        "shard of the series key",
        MetricBatch,
        8,
        6 * _HOUR,
        True,
        "Normalized metric samples, columnar batches, one series always on one partition",
    )
    LOGS_RAW = TopicSpec(
        "logs.raw", "shard of the service name", LogBatch, 4, 1 * _DAY, True, "Normalized log records, batched"
    )
    TRACES_RAW = TopicSpec(
        "traces.raw", "shard of the service name", SpanBatch, 4, 1 * _DAY, True, "Normalized spans, batched"
    )
    ALERTS_RECEIVED = TopicSpec(
        "alerts.received",
        "alert fingerprint",
        AlertRecord,
        1,
        1 * _DAY,
        False,
        "Every alert delivery as received, duplicates included (input of the deduplicator)",
    )
    ALERTS_RAW = TopicSpec(
        "alerts.raw",
        "alert fingerprint",
        AlertRecord,
        1,
        7 * _DAY,
        False,
        "Alerts after fingerprint dedup: each firing and each resolve once",
    )
    CHANGES = TopicSpec("changes", "service", ChangeEvent, 1, 30 * _DAY, False, "Deployments and configuration changes")
    # Layer 2: stream (value types defined with the stream layer)
    FEATURES = TopicSpec(
        "features", "shard of the series key", FeatureBatch, 8, 1 * _DAY, True, "Windowed feature vectors, batched"
    )
    TOPOLOGY_EDGES = TopicSpec(
        "topology.edges", "caller service", TopologyEdge, 1, 7 * _DAY, False, "Service call edges observed in traces"
    )
    # Layer 3
    ANOMALIES = TopicSpec("anomalies", "series key", AnomalyRecord, 4, 7 * _DAY, False, "Detected anomalies")
    PREDICTIONS = TopicSpec("predictions", "series key", PredictionRecord, 1, 7 * _DAY, False, "Predictive alerts")
    CORRELATION_EVENTS = TopicSpec(
        "correlation.events",
        "constant: one ordered log",
        bytes,
        1,
        7 * _DAY,
        False,
        "What the correlator takes, in the order it takes it: alerts, anomalies, predictions, changes, feedback"
        " and its own clock ticks, each in its own record schema",
    )
    INCIDENTS = TopicSpec("incidents", "incident id", IncidentRecord, 1, 30 * _DAY, False, "Correlated incidents")
    RCA_RESULTS = TopicSpec("rca.results", "incident id", RcaResult, 1, 30 * _DAY, False, "Ranked root causes")
    # Layer 4 and gateway
    ACTIONS = TopicSpec(
        "actions", "execution id", ExecutionRecord, 1, 30 * _DAY, False, "Runbook executions, every new state"
    )
    APPROVALS = TopicSpec(
        "approvals",
        "execution id (incident id for a request)",
        ApprovalRecord,
        1,
        30 * _DAY,
        False,
        "Operators' requests, approvals and rejections of executions",
    )
    FEEDBACK = TopicSpec(
        "feedback", "subject id", FeedbackRecord, 1, 365 * _DAY, False, "Operator feedback and outcomes"
    )


#: The key of every ``correlation.events`` record: one key, so one ordered log whatever the partitioning.
CORRELATION_EVENTS_KEY = b"correlation"

ALL_TOPICS: tuple[TopicSpec, ...] = tuple(v for v in vars(Topics).values() if isinstance(v, TopicSpec))


def declare(app: faust.App, spec: TopicSpec, prefix: str = "") -> faust.TopicT:
    """Declare ``spec`` on a Faust app; values stay raw bytes and are decoded by the schema class."""
    return app.topic(
        spec.full_name(prefix),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=spec.partitions,
        retention=spec.retention,
    )
