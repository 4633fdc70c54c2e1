"""Agent: log records (``logs.raw``) into the document store's ``logs`` collection, within a retention bound."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import faust
import structlog
from aiops_common.agent_loop import install_store_agent
from aiops_common.documents import DocumentStore
from aiops_common.schemas import LogBatch, LogRecord
from aiops_common.schemas.logs import SEVERITY_NAMES
from aiops_common.service import ServiceStartError
from aiops_common.topics import Topics, declare
from prometheus_client import Counter

from aiops_correlation.settings import CorrelationSettings

__all__ = ["COLLECTION", "LOG_INDEX_SKIPPED", "document", "document_id", "install", "severity_rank"]

log = structlog.get_logger(__name__)

COLLECTION = "logs"
BATCH = 200
WITHIN_S = 0.5

LOG_INDEX_SKIPPED = Counter(
    "aiops_log_index_skipped_records_total",
    "Log records the log indexer did not index, by reason (below_min_severity, past_retention)",
    ["reason"],
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ALIASES = {"WARNING": "WARN", "CRITICAL": "FATAL"}
_SOURCE_LABELS = ("source", "instance", "pod", "k8s_pod_name", "container", "host")
"""Labels that say which emitter of the service wrote a record, most specific first."""


def severity_rank(name: str) -> int | None:
    """Where a severity stands (``trace`` 0 ... ``fatal`` 5); None for one not named (``UNSPECIFIED``).

    >>> severity_rank("info"), severity_rank("Warning"), severity_rank("UNSPECIFIED")
    (2, 3, None)
    """
    upper = name.strip().upper()
    upper = _ALIASES.get(upper, upper)
    return SEVERITY_NAMES.index(upper) if upper in SEVERITY_NAMES else None


def document_id(record: LogRecord) -> str:
    """A hash of everything the record says: the same record delivered twice (a redelivery after a restart,
    a producer's retry) is one document; records differing in anything are two."""
    canonical = json.dumps(
        [
            record.service,
            record.ts_ns,
            record.severity,
            record.severity_number,
            record.body,
            sorted(record.labels.items()),
            record.trace_id,
            record.span_id,
        ],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return "log-" + hashlib.sha256(canonical.encode()).hexdigest()[:32]


def document(record: LogRecord) -> dict[str, Any]:
    """The ``logs`` document of a record: ``at``, ``services``, ``severity``, ``source`` and ``message`` are
    indexed; labels, trace and span ids are kept beside them.

    >>> doc = document(LogRecord(ts_ns=1_700_000_000_123_000_000, service="api", body="timeout calling db",
    ...                          severity="ERROR", severity_number=17, labels={"pod": "api-1"}, trace_id="ab"))
    >>> doc["at"], doc["services"], doc["severity"], doc["source"], doc["message"], doc["trace_id"]
    ('2023-11-14T22:13:20.123000+00:00', ['api'], 'error', 'api-1', 'timeout calling db', 'ab')
    """
    at = _EPOCH + timedelta(microseconds=record.ts_ns // 1000)
    source = next((record.labels[name] for name in _SOURCE_LABELS if record.labels.get(name)), "")
    return {
        "at": at.isoformat(),
        "ts_ns": record.ts_ns,
        "services": [record.service],
        "severity": record.severity.lower(),
        "severity_number": record.severity_number,
        "source": source,
        "message": record.body,
        "labels": dict(record.labels),
        "trace_id": record.trace_id,
        "span_id": record.span_id,
    }


def _records(batches: Iterable[LogBatch]) -> Iterable[LogRecord]:
    for batch in batches:
        yield from batch.rows


def install(app: faust.App, settings: CorrelationSettings, store: DocumentStore) -> None:
    topic = declare(app, Topics.LOGS_RAW, settings.topic_prefix)
    minimum = severity_rank(settings.logs_index_min_severity)
    if minimum is None:
        raise ServiceStartError(
            f"AIOPS_LOGS_INDEX_MIN_SEVERITY={settings.logs_index_min_severity!r} is not a severity;"
            f" use one of {', '.join(name.lower() for name in SEVERITY_NAMES)}"
        )
    retention_s = settings.logs_index_retention_s

    async def index(batches: list[LogBatch]) -> None:
        oldest_ns = int((time.time() - retention_s) * 1e9)
        below = past = 0
        documents: dict[str, dict[str, Any]] = {}
        for record in _records(batches):
            rank = severity_rank(record.severity)
            # A record without a severity is kept: it may be the one error line a service printed plainly.
            if rank is not None and rank < minimum:
                below += 1
            elif record.ts_ns < oldest_ns:
                past += 1  # the retention sweep would delete it at once
            else:
                documents[document_id(record)] = document(record)
        if below:
            LOG_INDEX_SKIPPED.labels("below_min_severity").inc(below)
        if past:
            LOG_INDEX_SKIPPED.labels("past_retention").inc(past)
        if documents:
            # One write for the batch: one SQLite transaction, or Elasticsearch _bulk requests.
            await store.upsert_many(COLLECTION, list(documents.items()))

    install_store_agent(app, topic, "log_indexer", LogBatch.decode, index, BATCH, WITHIN_S)

    sweep_every_s = min(max(retention_s / 24, 1.0), 600.0)

    async def sweep_logs() -> None:
        # Every worker sweeps (the delete is the same whoever runs it); the first sweep runs at start-up.
        while True:
            before = datetime.now(UTC) - timedelta(seconds=retention_s)
            try:
                deleted = await store.delete_older_than(COLLECTION, before)
            except Exception as exc:  # any driver's error: the store is down, the next sweep catches up
                log.warning(
                    "log retention sweep failed", error=f"{type(exc).__name__}: {exc}", retry_in_s=sweep_every_s
                )
            else:
                if deleted:
                    log.info("log retention sweep", deleted=deleted, before=before.isoformat())
            await asyncio.sleep(sweep_every_s)

    app.task(sweep_logs)
