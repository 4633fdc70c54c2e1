"""The RCA service's agents, installed on a Faust app by ``aiops up`` / ``aiops worker rca``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import faust
import structlog
from aiops_common.documents import open_document_store
from aiops_common.feedback import open_feedback_store
from aiops_common.topology import open_topology_store
from aiops_common.tsdb import open_tsdb

from aiops_rca.agents import cause_feedback, root_cause, trace_origins
from aiops_rca.feedback_priors import CausePriors
from aiops_rca.gather import Sources
from aiops_rca.settings import RcaSettings
from aiops_rca.trace_index import TraceIndex

__all__ = ["install"]

log = structlog.get_logger(__name__)

S = TypeVar("S")


def install(app: faust.App, settings: RcaSettings) -> None:
    if not isinstance(settings, RcaSettings):
        settings = RcaSettings(**settings.model_dump())
    unavailable: dict[str, str] = {}

    def opened(source: str, open_store: Callable[[str], S], url: str) -> S | None:
        # A store that cannot even be opened (a bad URL, an unwritable folder) leaves the service running,
        # degraded: every result then says what was missing and why.
        try:
            return open_store(url)
        except Exception as exc:
            unavailable[source] = f"cannot open {url}: {type(exc).__name__}: {exc}"
            log.error("store unavailable; results will be degraded", source=source, error=unavailable[source])
            return None

    tsdb = opened("tsdb", open_tsdb, settings.tsdb_url)
    topology = opened("topology", open_topology_store, settings.topology_url)
    feedback = opened("feedback", open_feedback_store, settings.feedback_url)
    documents = opened("documents", open_document_store, settings.documents_url)
    traces = TraceIndex(horizon_s=settings.rca_trace_horizon_s)
    priors = CausePriors()
    sources = Sources(tsdb, topology, feedback, traces, priors=priors, unavailable=unavailable)
    # Evidence kept in memory, fed by their own topics; then the analysis that reads it.
    trace_origins.install(app, settings, traces)
    cause_feedback.install(app, settings, feedback, documents, priors)
    root_cause.install(app, settings, sources, documents, priors)
