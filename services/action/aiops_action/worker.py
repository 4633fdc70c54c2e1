"""The action service's worker: matcher (``rca.results``), orchestrator (``approvals``), executor (``actions``
and the sweep) and, when notifications are configured, the notifier; installed by ``aiops up`` / ``aiops worker
action``."""

from __future__ import annotations

import os
import socket
import uuid
from datetime import UTC, datetime

import faust
import structlog
from aiops_common.audit import AuditLog
from aiops_common.broker.publisher import Publisher
from aiops_common.documents import open_document_store
from aiops_common.topology import open_topology_store
from aiops_common.tsdb import open_tsdb

from aiops_action.agents import executor, matcher, orchestrator
from aiops_action.catalogue import publish_catalogue
from aiops_action.engine import ActionEngine
from aiops_action.executions import ExecutionBook
from aiops_action.executors.configured import executors_from_settings
from aiops_action.notify.dispatch import Notifications
from aiops_action.outputs import Outputs
from aiops_action.policy import ApprovalPolicy
from aiops_action.runbooks.loader import load_configured
from aiops_action.runner import Runner
from aiops_action.settings import ActionSettings

__all__ = ["install", "instance_name"]

log = structlog.get_logger(__name__)


def instance_name() -> str:
    """This worker among others: host, process, and a random part (a pid can come back after a restart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def install(app: faust.App, settings: ActionSettings) -> None:
    if not isinstance(settings, ActionSettings):
        settings = ActionSettings(**settings.model_dump())
    # A bad runbook folder or notification file stops the worker at start, naming every problem: an action
    # service that silently runs without its runbooks would propose nothing and say nothing.
    runbooks = load_configured(settings)
    notifications = Notifications.from_settings(settings)
    documents = open_document_store(settings.documents_url)
    tsdb = open_tsdb(settings.tsdb_url)
    topology = open_topology_store(settings.topology_url)
    publisher = Publisher(settings.require_broker_url(), settings.topic_prefix)
    outputs = Outputs(publisher)
    book = ExecutionBook(documents, AuditLog(documents), outputs.execution)
    executors = executors_from_settings(settings)
    runner = Runner(book, executors, tsdb, outputs, lease_s=settings.action_lease_s, instance=instance_name())
    engine = ActionEngine(
        settings, runbooks, ApprovalPolicy.from_settings(settings), executors, topology, documents, book
    )

    async def catalogue() -> None:
        try:
            written = await publish_catalogue(documents, runbooks, datetime.now(UTC))
            log.info("runbooks loaded", runbooks=written, ids=[r.id for r in runbooks])
        except Exception as exc:  # the API shows no runbooks until the next start; executions are not held up
            log.error("runbook catalogue not written", error=repr(exc))

    app.task(catalogue)
    matcher.install(app, settings, engine)
    orchestrator.install(app, settings, engine)
    executor.install(app, settings, runner)
    if notifications is not None:
        from aiops_action.agents import notifier

        notifier.install(app, settings, notifications, documents)
