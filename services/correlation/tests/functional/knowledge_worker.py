"""A Faust worker running only correlation's knowledge agents, as ``aiops worker correlation`` runs them.

The functional tests of these agents start it as a subprocess (``python knowledge_worker.py``, the same
``AIOPS_*`` environment), so they depend on nothing else the service installs.
"""

from __future__ import annotations

import faust
from aiops_common.documents import open_document_store
from aiops_common.faust_app import create_app
from aiops_common.observability import configure_logging
from aiops_common.topology import open_topology_store
from aiops_common.worker_http import WorkerHttp
from aiops_correlation.agents import change_recorder, dependency_recorder, log_indexer
from aiops_correlation.settings import CorrelationSettings


def main() -> None:
    settings = CorrelationSettings()
    configure_logging(settings.log_level, settings.log_format)
    broker_url = settings.require_broker_url()
    app = create_app("correlation", settings, broker_url)
    probes = WorkerHttp(app, settings, broker_url)
    topology = open_topology_store(settings.topology_url)
    dependency_recorder.install(app, settings, topology)
    change_recorder.install(app, settings, topology)
    log_indexer.install(app, settings, open_document_store(settings.documents_url))
    worker = faust.Worker(app, probes, loglevel=settings.log_level, redirect_stdouts=False, override_logging=False)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
