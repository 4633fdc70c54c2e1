"""Agent: "confirmed cause" / "wrong cause" labels on ``feedback`` -> the feedback store and the worker's priors.

Labels are kept in the feedback store (idempotent by label id), where they stay for evaluation, and
counted in the in-memory priors the root-cause agent puts into each case. At start the priors are
read back from the store; the kind of failure a label is about comes from the result it judged
(noted by the root-cause agent as it publishes, or read from the incident's ``rca`` field in the
document store). Other labels on ``feedback`` are other agents' business and are passed over.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import faust
import structlog
from aiops_common.agent_loop import AgentMeter
from aiops_common.documents import DocumentStore
from aiops_common.feedback import FeedbackStore
from aiops_common.schemas import FeedbackRecord, SchemaError
from aiops_common.topics import Topics, declare

from aiops_rca.feedback_priors import CausePriors, is_cause_label
from aiops_rca.settings import RcaSettings

__all__ = ["install", "kind_from_documents", "load_priors"]

log = structlog.get_logger(__name__)

BATCH = 100
WITHIN_S = 0.5
RETRY_DELAYS_S: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0)


async def kind_from_documents(documents: DocumentStore | None, feedback: FeedbackRecord) -> str | None:
    """The kind of the labelled service's cause in the analysis stored on the incident, if there is one."""
    if documents is None:
        return None
    stored = await documents.get("incidents", feedback.subject_id)
    rca = stored.body.get("rca") if stored is not None else None
    if not isinstance(rca, dict):
        return None
    for cause in rca.get("causes", []):
        if isinstance(cause, dict) and cause.get("service") == feedback.related_id:
            kind = cause.get("kind")
            return kind if isinstance(kind, str) else None
    return None


async def kind_of(priors: CausePriors, documents: DocumentStore | None, feedback: FeedbackRecord) -> str | None:
    kind = priors.kind_of(feedback)
    if kind is not None:
        return kind
    try:
        return await kind_from_documents(documents, feedback)
    except Exception as exc:  # the store is down: the label counts for the service, whatever the kind
        log.warning("document store unreadable; label counted without its kind", error=repr(exc))
        return None


async def load_priors(priors: CausePriors, store: FeedbackStore, documents: DocumentStore | None) -> int:
    """Count every cause label the feedback store keeps; how many."""
    counted = 0
    for feedback in await store.labels():
        if is_cause_label(feedback) and feedback.id not in priors.seen:
            counted += priors.add(feedback, await kind_of(priors, documents, feedback))
    return counted


def install(
    app: faust.App,
    settings: RcaSettings,
    store: FeedbackStore | None,
    documents: DocumentStore | None,
    priors: CausePriors,
) -> None:
    source = declare(app, Topics.FEEDBACK, settings.topic_prefix)
    meter = AgentMeter("cause_feedback")

    async def keep(labels: list[FeedbackRecord]) -> None:
        if store is None:
            return
        for attempt in range(len(RETRY_DELAYS_S) + 1):
            try:
                for label in labels:
                    await store.add_label(label)  # False for one kept already: redelivered
                return
            except Exception as exc:  # the store is down; the priors have the labels meanwhile
                if attempt == len(RETRY_DELAYS_S):
                    meter.dropped("store_unavailable", repr(exc), n=len(labels))
                    return
                log.warning("feedback store unavailable; retrying", error=repr(exc), in_s=RETRY_DELAYS_S[attempt])
                await asyncio.sleep(RETRY_DELAYS_S[attempt])

    @app.agent(source, name="cause_feedback")
    async def run(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        if store is not None:
            try:
                log.info("cause labels read", labels=await load_priors(priors, store, documents))
            except Exception as exc:  # the priors start from what arrives from now on
                log.warning("feedback store unreadable; priors start empty", error=repr(exc))
        async for values in stream.take(BATCH, within=WITHIN_S):
            meter.took(len(values))
            with meter.timed():
                labels = []
                for value in values:
                    try:
                        feedback = FeedbackRecord.decode(value)
                    except SchemaError as exc:
                        meter.dropped("undecodable", str(exc))
                        continue
                    if is_cause_label(feedback):
                        labels.append(feedback)
                        priors.add(feedback, await kind_of(priors, documents, feedback))
                await keep(labels)
            yield None
