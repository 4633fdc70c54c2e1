"""The detection service's agents, installed on a Faust app by ``aiops up`` / ``aiops worker detection``."""

from __future__ import annotations

import asyncio

import faust
import torch
from aiops_common.documents import open_document_store
from aiops_common.feedback import open_feedback_store

from aiops_detection.agents import (
    anomaly_archive,
    anomaly_detector,
    config_updates,
    crossing_predictor,
    feedback_labels,
    model_updates,
)
from aiops_detection.service_settings import DetectionServiceSettings
from aiops_detection.settings import DetectionSettings

__all__ = ["install"]


def install(app: faust.App, settings: DetectionSettings) -> None:
    if not isinstance(settings, DetectionServiceSettings):
        settings = DetectionServiceSettings(**settings.model_dump())
    if settings.detect_torch_threads:
        torch.set_num_threads(settings.detect_torch_threads)

    async def load_torch_optimiser() -> None:
        # The first optimiser a process builds imports seconds' worth of torch; do it while the group forms,
        # not in the middle of a partition's first tier-3 fit.
        await asyncio.to_thread(lambda: torch.optim.Adam(torch.nn.Linear(1, 1).parameters()))

    app.task(load_torch_optimiser)
    store = open_feedback_store(settings.feedback_url)
    documents = open_document_store(settings.documents_url)
    models = model_updates.install(app, settings)
    config = config_updates.install(app, settings, documents)
    anomaly_detector.install(app, settings, models, store, config)
    if settings.detect_static_thresholds:
        crossing_predictor.install(app, settings, documents)
    anomaly_archive.install(app, settings, store, documents)
    feedback_labels.install(app, settings, store)
