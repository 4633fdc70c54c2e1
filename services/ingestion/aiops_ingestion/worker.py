"""The ingestion service's agents, installed on a Faust app by ``aiops up`` / ``aiops worker ingestion``."""

from __future__ import annotations

import faust

from aiops_ingestion.alert_deduplicator import install_alert_deduplicator
from aiops_ingestion.settings import IngestionSettings

__all__ = ["install"]


def install(app: faust.App, settings: IngestionSettings) -> None:
    install_alert_deduplicator(app, settings.topic_prefix, settings.ingest_alert_dedup_ttl_s)
