"""Agent: operator labels from ``feedback``: keep them for retraining, and move the labelled series' thresholds.

A false positive makes its series less sensitive, a true positive tightens it back
(see ``detectors.sensitivity``). The label and the anomaly it names arrive on two
topics in either order; whichever comes second applies the label, through the one
path here (:func:`apply_labels`), which recomputes the series' sensitivity from all
its labels and records, in the same transaction, that each label was applied.
"""

from __future__ import annotations

from datetime import UTC, datetime

import faust
import structlog
from aiops_common.agent_loop import install_agent
from aiops_common.feedback import FeedbackStore, Sensitivity
from aiops_common.schemas import FeedbackRecord
from aiops_common.topics import Topics, declare

from aiops_detection.detectors.sensitivity import fold_labels
from aiops_detection.service_settings import DetectionServiceSettings

__all__ = ["apply_labels", "install"]

log = structlog.get_logger(__name__)


async def apply_labels(store: FeedbackStore, series_key: str, settings: DetectionServiceSettings) -> Sensitivity:
    """Recompute one series' sensitivity from every label on its anomalies, store it and mark those labels applied.

    Both sides of the race call this: a label whose anomaly is archived, and an archived
    anomaly that already has labels. Either may run twice for one label (a re-delivery,
    or both sides seeing each other); the result is the same, and the first time is kept.
    """
    labelled = await store.series_labels(series_key)
    sensitivity = fold_labels(labelled, settings.detect_alert_score, settings.detect_feedback_margin)
    label_ids = [feedback.id for _, feedback in labelled]
    await store.record_applied(series_key, sensitivity, label_ids, datetime.now(UTC))
    log.info(
        "feedback applied",
        series=series_key,
        labels=len(label_ids),
        slack=sensitivity.slack,
        min_score=sensitivity.min_score,
    )
    return sensitivity


def install(app: faust.App, settings: DetectionServiceSettings, store: FeedbackStore) -> None:
    topic = declare(app, Topics.FEEDBACK, settings.topic_prefix)

    async def take_label(feedback: FeedbackRecord) -> int:
        # Kept before the anomaly is looked up: if the archive records the anomaly in
        # between, it finds this label and applies it (the store serialises both).
        await store.add_label(feedback)
        anomaly = await store.anomaly(feedback.subject_id) if feedback.subject_kind == "anomaly" else None
        if anomaly is None:
            log.info("label pending until its anomaly is archived", subject=feedback.subject_id)
        else:
            await apply_labels(store, anomaly.series_key, settings)
        return 0  # publishes nothing

    install_agent(app, topic, "feedback_labels", FeedbackRecord.decode, take_label)
