"""Agent: every ``anomalies`` record into the feedback store, so a label on an anomaly id finds its series."""

from __future__ import annotations

from collections.abc import AsyncIterator

import faust
import structlog
from aiops_common.schemas import AnomalyRecord, SchemaError
from aiops_common.topics import Topics, declare

from aiops_detection.agents.feedback_labels import refresh_sensitivity
from aiops_detection.feedback_store import FeedbackStore
from aiops_detection.service_settings import DetectionServiceSettings

__all__ = ["install"]

log = structlog.get_logger(__name__)


def install(app: faust.App, settings: DetectionServiceSettings, store: FeedbackStore) -> None:
    topic = declare(app, Topics.ANOMALIES, settings.topic_prefix)

    @app.agent(topic, name="anomaly_archive")
    async def archive(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        async for value in stream:
            try:
                anomaly = AnomalyRecord.decode(value)
            except SchemaError as exc:
                log.error("skipping undecodable anomaly", error=str(exc))
                continue
            await store.record_anomaly(anomaly)
            if await store.labels(anomaly.id):
                # Labelled before it got here (the feedback agent kept the label): apply it now.
                await refresh_sensitivity(store, anomaly.series_key, settings)
            yield None
