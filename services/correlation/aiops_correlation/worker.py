"""The correlation service's agents, installed on a Faust app by ``aiops up`` / ``aiops worker correlation``."""

from __future__ import annotations

import faust
from aiops_common.documents import open_document_store
from aiops_common.topology import open_topology_store

from aiops_correlation.agents import (
    change_recorder,
    dependency_recorder,
    event_router,
    incident_archive,
    incident_builder,
    log_indexer,
)
from aiops_correlation.settings import CorrelationSettings

__all__ = ["install"]


def install(app: faust.App, settings: CorrelationSettings) -> None:
    if not isinstance(settings, CorrelationSettings):
        settings = CorrelationSettings(**settings.model_dump())
    documents = open_document_store(settings.documents_url)
    topology = open_topology_store(settings.topology_url)
    # Correlation: every input onto one ordered log, incidents from it, their newest revisions into the store.
    events = event_router.install(app, settings)
    incident_builder.install(app, settings, events, documents, topology)
    incident_archive.install(app, settings, documents)
    # Knowledge: what the correlator reads about the topology and changes, and the log index.
    dependency_recorder.install(app, settings, topology)
    change_recorder.install(app, settings, topology)
    log_indexer.install(app, settings, documents)
