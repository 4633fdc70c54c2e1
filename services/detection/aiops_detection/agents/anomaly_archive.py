"""Agent: every ``anomalies`` record into the feedback store, so a label on an anomaly id finds its series, and
into the document store's ``anomalies`` collection, where the API and the UI query it."""

from __future__ import annotations

import asyncio
from typing import Any

import faust
import structlog
from aiops_common.agent_loop import install_agent
from aiops_common.documents import DocumentStore
from aiops_common.feedback import FeedbackStore
from aiops_common.observability import LogRateLimit
from aiops_common.schemas import AnomalyRecord, PredictionRecord
from aiops_common.topics import Topics, declare

from aiops_detection.agents.feedback_labels import apply_labels
from aiops_detection.service_settings import DetectionServiceSettings

__all__ = ["RETRY_DELAYS_S", "document_of", "install", "write_documents"]

log = structlog.get_logger(__name__)

RETRY_DELAYS_S: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0)
"""Waits between tries of a document write; the last one repeats until the store takes it."""

_log_limit = LogRateLimit(10.0)


def document_of(record: AnomalyRecord | PredictionRecord) -> tuple[str, dict[str, Any]]:
    """A record as its document: its JSON under its id, plus ``services`` (what the collection filters on)."""
    body = record.model_dump(mode="json")
    if record.service:
        body["services"] = [record.service]
    return record.id, body


async def write_documents(
    store: DocumentStore, collection: str, records: list[AnomalyRecord] | list[PredictionRecord]
) -> None:
    """Upsert the records' documents, trying again until the store takes them.

    The input's offset waits meanwhile (the agent acknowledges a record once this returns), so a store that is
    down delays records and loses none; a restarted worker writes them again under the same ids.
    """
    documents = [document_of(r) for r in records]
    attempt = 0
    while True:
        try:
            await store.upsert_many(collection, documents)
            return
        except ValueError:
            raise  # the records themselves: no retry can help, and the agent's own handling applies
        except Exception as exc:  # any driver's error: the store is down or refused
            wait_s = RETRY_DELAYS_S[min(attempt, len(RETRY_DELAYS_S) - 1)]
            attempt += 1
            held = _log_limit(collection)
            if held is not None:
                log.warning(
                    "document store write failed, retrying",
                    collection=collection,
                    records=len(documents),
                    attempt=attempt,
                    retry_in_s=wait_s,
                    error=f"{type(exc).__name__}: {exc}",
                    failures_since_last_log=held,
                )
            await asyncio.sleep(wait_s)


def install(app: faust.App, settings: DetectionServiceSettings, store: FeedbackStore, documents: DocumentStore) -> None:
    topic = declare(app, Topics.ANOMALIES, settings.topic_prefix)

    async def record(anomaly: AnomalyRecord) -> int:
        # Recorded before its labels are looked up: a label kept in between finds this
        # anomaly on its own side and is applied there (see ``feedback_labels``).
        await store.record_anomaly(anomaly)
        if await store.labels(anomaly.id):
            # Labelled before it got here: the same path as a label arriving second applies it.
            await apply_labels(store, anomaly.series_key, settings)
        await write_documents(documents, "anomalies", [anomaly])
        return 0  # publishes nothing

    install_agent(app, topic, "anomaly_archive", AnomalyRecord.decode, record)
