"""Agent: operator labels from ``feedback``: keep them for retraining, and move the labelled series' thresholds.

A false positive makes its series less sensitive, a true positive tightens it back
(see ``sensitivity``). The series' sensitivity is recomputed from all its labels and
written to the feedback store, where the anomaly detector reads it before publishing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import faust
import structlog
from aiops_common.schemas import FeedbackRecord, SchemaError
from aiops_common.topics import Topics, declare

from aiops_detection.detectors.sensitivity import Sensitivity, fold_labels
from aiops_detection.feedback_store import FeedbackStore
from aiops_detection.service_settings import DetectionServiceSettings

__all__ = ["install", "refresh_sensitivity"]

log = structlog.get_logger(__name__)


async def refresh_sensitivity(store: FeedbackStore, series_key: str, settings: DetectionServiceSettings) -> Sensitivity:
    """Recompute one series' sensitivity from every label on its anomalies and store it."""
    sensitivity = fold_labels(
        await store.series_labels(series_key), settings.detect_alert_score, settings.detect_feedback_margin
    )
    await store.set_sensitivity(series_key, sensitivity)
    return sensitivity


def install(app: faust.App, settings: DetectionServiceSettings, store: FeedbackStore) -> None:
    topic = declare(app, Topics.FEEDBACK, settings.topic_prefix)

    @app.agent(topic, name="feedback_labels")
    async def labels(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        async for value in stream:
            try:
                feedback = FeedbackRecord.decode(value)
            except SchemaError as exc:
                log.error("skipping undecodable feedback", error=str(exc))
                continue
            await store.add_label(feedback)
            anomaly = await store.anomaly(feedback.subject_id) if feedback.subject_kind == "anomaly" else None
            if anomaly is None:
                # Kept; the anomaly archive applies it when the anomaly arrives.
                log.info("label kept", subject=feedback.subject_id, label=feedback.label.value)
            else:
                sensitivity = await refresh_sensitivity(store, anomaly.series_key, settings)
                log.info(
                    "feedback applied",
                    subject=feedback.subject_id,
                    label=feedback.label.value,
                    series=anomaly.series_key,
                    slack=sensitivity.slack,
                    min_score=sensitivity.min_score,
                )
            yield None
