"""Decode and normalize everything the ingestion service receives into the shared record schemas.

Pure functions, no I/O: the HTTP and gRPC servers call them with a request body
(already stripped of gzip Content-Encoding; remote write still snappy) or a parsed
message, and publish what comes back. The metric normalizers take the server's
:class:`SeriesCache`, which remembers series already checked by the bytes they
arrived as (see docs/ingestion.md).

Refusal policy: a request with any invalid item (sample, series, log record,
alert) is refused as a whole with one :class:`InvalidPayloadError` (400), whose
message names the first few offending items and counts all of them. Prometheus
does not retry a 400 and drops the batch, so bad data is never half-stored and the
sender's log shows what to fix. OTLP, whose protocol has a partial success, keeps
a request's valid items and counts the rest in a partial :class:`Rejections`.
Other statuses: 413 when a body, its decompressed size, or its series count is
over the limit; 415 for an unsupported Content-Type. Nothing else escapes these
functions.
"""

from __future__ import annotations

from aiops_ingestion.normalize._alertmanager import (
    AlertmanagerWebhook,
    alertmanager_fingerprint,
    parse_alertmanager_webhook,
)
from aiops_ingestion.normalize._content_type import remote_write_version
from aiops_ingestion.normalize._deployment import DeploymentEvent, parse_deployment_event
from aiops_ingestion.normalize._enricher import Enricher, EnrichmentConfigError
from aiops_ingestion.normalize._errors import InvalidPayloadError, Rejections
from aiops_ingestion.normalize._json_api import LogsWrite, MetricsWrite, parse_logs_write, parse_metrics_write
from aiops_ingestion.normalize._limits import Limits
from aiops_ingestion.normalize._otlp_attributes import RESOURCE_LABELS, label_name
from aiops_ingestion.normalize._otlp_decode import parse_otlp_logs, parse_otlp_metrics, parse_otlp_traces
from aiops_ingestion.normalize._otlp_logs import normalize_otlp_logs
from aiops_ingestion.normalize._otlp_metrics import normalize_otlp_metrics, prometheus_name
from aiops_ingestion.normalize._otlp_metrics_view import ExportMetricsView
from aiops_ingestion.normalize._otlp_traces import normalize_otlp_traces
from aiops_ingestion.normalize._remote_write import (
    RemoteWriteCounts,
    metric_kind,
    normalize_remote_write,
    parse_remote_write,
)
from aiops_ingestion.normalize._remote_write_v2 import normalize_remote_write_v2, parse_remote_write_v2
from aiops_ingestion.normalize._sample_values import STALE_NAN, is_stale_marker
from aiops_ingestion.normalize._series_cache import SeriesCache
from aiops_ingestion.normalize._timestamps import TimeWindow, parse_timestamp_ns

__all__ = [
    "RESOURCE_LABELS",
    "STALE_NAN",
    "AlertmanagerWebhook",
    "DeploymentEvent",
    "Enricher",
    "EnrichmentConfigError",
    "ExportMetricsView",
    "InvalidPayloadError",
    "Limits",
    "LogsWrite",
    "MetricsWrite",
    "Rejections",
    "RemoteWriteCounts",
    "SeriesCache",
    "TimeWindow",
    "alertmanager_fingerprint",
    "is_stale_marker",
    "label_name",
    "metric_kind",
    "normalize_otlp_logs",
    "normalize_otlp_metrics",
    "normalize_otlp_traces",
    "normalize_remote_write",
    "normalize_remote_write_v2",
    "parse_alertmanager_webhook",
    "parse_deployment_event",
    "parse_logs_write",
    "parse_metrics_write",
    "parse_otlp_logs",
    "parse_otlp_metrics",
    "parse_otlp_traces",
    "parse_remote_write",
    "parse_remote_write_v2",
    "parse_timestamp_ns",
    "prometheus_name",
    "remote_write_version",
]
