"""The detection service's agents, installed on a Faust app by ``aiops up`` / ``aiops worker detection``."""

from __future__ import annotations

import faust

from aiops_detection import anomaly_archive, anomaly_detector, crossing_predictor, feedback_labels, model_updates
from aiops_detection.feedback_store import open_feedback_store
from aiops_detection.service_settings import DetectionServiceSettings
from aiops_detection.settings import DetectionSettings

__all__ = ["install"]


def install(app: faust.App, settings: DetectionSettings) -> None:
    if not isinstance(settings, DetectionServiceSettings):
        settings = DetectionServiceSettings(**settings.model_dump())
    store = open_feedback_store(settings.feedback_url)
    models = model_updates.install(app, settings)
    anomaly_detector.install(app, settings, models, store)
    if settings.detect_static_thresholds:
        crossing_predictor.install(app, settings)
    anomaly_archive.install(app, settings, store)
    feedback_labels.install(app, settings, store)
