"""Agent: every ``anomalies`` record into the feedback store, so a label on an anomaly id finds its series."""

from __future__ import annotations

import faust
from aiops_common.agent_loop import install_agent
from aiops_common.feedback import FeedbackStore
from aiops_common.schemas import AnomalyRecord
from aiops_common.topics import Topics, declare

from aiops_detection.agents.feedback_labels import apply_labels
from aiops_detection.service_settings import DetectionServiceSettings

__all__ = ["install"]


def install(app: faust.App, settings: DetectionServiceSettings, store: FeedbackStore) -> None:
    topic = declare(app, Topics.ANOMALIES, settings.topic_prefix)

    async def record(anomaly: AnomalyRecord) -> int:
        # Recorded before its labels are looked up: a label kept in between finds this
        # anomaly on its own side and is applied there (see ``feedback_labels``).
        await store.record_anomaly(anomaly)
        if await store.labels(anomaly.id):
            # Labelled before it got here: the same path as a label arriving second applies it.
            await apply_labels(store, anomaly.series_key, settings)
        return 0  # publishes nothing

    install_agent(app, topic, "anomaly_archive", AnomalyRecord.decode, record)
