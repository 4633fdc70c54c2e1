"""Executions as the action service keeps them: documents in ``executions`` written against the version read
(two workers can never both move one on), each new state published on ``actions`` and written to the audit log."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog
from aiops_common.audit import AuditLog
from aiops_common.documents import DocumentFilter, DocumentStore, VersionConflictError
from aiops_common.schemas import ExecutionRecord, ExecutionStatus, execution_document
from prometheus_client import Counter

__all__ = ["COLLECTION", "ExecutionBook", "Publish"]

log = structlog.get_logger(__name__)

COLLECTION = "executions"

AUDIT_FAILURES = Counter(
    "aiops_action_audit_failures_total",
    "Audit entries about executions that could not be written, by action",
    ["action"],
)

Publish = Callable[[ExecutionRecord], Awaitable[None]]


class ExecutionBook:
    """Reads and writes executions; ``publish`` puts a state on ``actions`` (the gateway's live feed, the
    notifier and the executor read it there)."""

    def __init__(self, documents: DocumentStore, audit: AuditLog, publish: Publish, actor: str = "action") -> None:
        self.documents = documents
        self.audit_log = audit
        self.publish = publish
        self.actor = actor

    async def get(self, execution_id: str) -> tuple[ExecutionRecord, int] | None:
        doc = await self.documents.get(COLLECTION, execution_id)
        if doc is None:
            return None
        return ExecutionRecord.from_document(doc.body), doc.version

    async def create(self, record: ExecutionRecord) -> int | None:
        """Write a new execution; None when one with its id exists already (a replay, another worker)."""
        try:
            version = await self.documents.upsert(COLLECTION, record.id, execution_document(record), expected_version=0)
        except VersionConflictError:
            return None
        await self.publish(record)
        return version

    async def save(self, record: ExecutionRecord, version: int, *, publish: bool = True) -> int:
        """Write a new state of an execution read at ``version``; ``VersionConflictError`` when another wrote it
        since. Published unless ``publish`` is False (a journal entry within one state, a lease renewal)."""
        new_version = await self.documents.upsert(
            COLLECTION, record.id, execution_document(record), expected_version=version
        )
        if publish:
            await self.publish(record)
        return new_version

    async def query(
        self, *, status: ExecutionStatus | None = None, terms: tuple[tuple[str, str], ...] = (), limit: int = 200
    ) -> list[tuple[ExecutionRecord, int]]:
        """Newest first."""
        where = DocumentFilter(status=status.value if status else None, terms=terms)
        page = await self.documents.query(COLLECTION, where, limit=limit)
        return [(ExecutionRecord.from_document(d.body), d.version) for d in page.documents]

    async def of_incident(self, incident_id: str) -> list[ExecutionRecord]:
        return [r for r, _ in await self.query(terms=(("incident_id", incident_id),))]

    async def history(self, runbook_id: str, service: str, limit: int = 100) -> list[ExecutionRecord]:
        """The runbook's executions on one service, newest first (what progressive automation learns from)."""
        found = await self.query(terms=(("action", runbook_id),), limit=limit)
        return [r for r, _ in found if r.cause_service == service]

    async def audit(
        self, record: ExecutionRecord, action: str, message: str, details: Mapping[str, Any] | None = None, by: str = ""
    ) -> None:
        """One audit entry about ``record``; a log line when the chain cannot be written (the execution goes on)."""
        try:
            await self.audit_log.append(
                by or self.actor,
                action,
                record.id,
                message,
                services=record.services,
                details={"incident_id": record.incident_id, "runbook_id": record.runbook_id, **(details or {})},
            )
        except Exception as exc:
            AUDIT_FAILURES.labels(action).inc()
            log.error("audit entry not written", execution_id=record.id, action=action, error=repr(exc))
