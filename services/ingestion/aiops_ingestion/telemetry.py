"""The ingestion service's own Prometheus metrics, exposed on ``/metrics``."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

__all__ = [
    "MESSAGES",
    "PARTIALLY_REJECTED",
    "PUBLISH_SECONDS",
    "RECORDS",
    "REJECTED",
    "REQUESTS",
    "SAMPLES",
    "UNAVAILABLE",
]

REQUESTS = Counter("aiops_ingest_requests_total", "Ingestion requests by endpoint and outcome", ["endpoint", "code"])
SAMPLES = Counter("aiops_ingest_samples_total", "Metric samples acknowledged by the broker", ["source"])
RECORDS = Counter("aiops_ingest_records_total", "Logs, spans, alerts and changes acknowledged", ["kind", "source"])
REJECTED = Counter("aiops_ingest_rejected_total", "Requests rejected as bad input", ["endpoint", "code"])
PARTIALLY_REJECTED = Counter(
    "aiops_ingest_partially_rejected_items_total",
    "Invalid items (data points, log records, spans) left out of partially accepted OTLP requests",
    ["endpoint"],
)
UNAVAILABLE = Counter("aiops_ingest_broker_unavailable_total", "Requests refused because the broker was unavailable")
MESSAGES = Counter("aiops_ingest_messages_total", "Batch messages published", ["topic"])
PUBLISH_SECONDS = Histogram(
    "aiops_ingest_publish_seconds",
    "Time from publish to broker acknowledgement",
    ["topic"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
