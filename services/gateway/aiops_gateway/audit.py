"""An audit entry for every mutating call: who, what, on which subject, from which request, with what result.

Entries go to the hash-chained audit log (``aiops_common.audit``) that the action service writes to as well, so
``aiops audit verify`` shows any entry edited, deleted or moved afterwards.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from aiops_common.audit import AuditLog
from aiops_common.documents import DocumentStore
from fastapi import Request

from aiops_gateway.auth.roles import Principal
from aiops_gateway.context import gateway

__all__ = ["audit"]

log = structlog.get_logger(__name__)

# One log per store, so each keeps the tail it last saw instead of looking for it on every call.
_logs: weakref.WeakKeyDictionary[DocumentStore, AuditLog] = weakref.WeakKeyDictionary()


def _audit_log(store: DocumentStore) -> AuditLog:
    found = _logs.get(store)
    if found is None:
        found = _logs[store] = AuditLog(store)
    return found


async def audit(
    request: Request,
    principal: Principal,
    action: str,
    subject_id: str,
    message: str,
    services: Sequence[str] = (),
    details: dict[str, Any] | None = None,
) -> None:
    """Append the entry to the audit chain in the document store (and write the log line).

    Called once the change is accepted; a store that cannot take the entry is logged, not raised, since the change
    itself already happened and the log line keeps the record.
    """
    at = datetime.now(UTC)
    extra: dict[str, Any] = {
        "actor_role": principal.role.value,
        "via": principal.via,
        "request_id": getattr(request.state, "request_id", ""),
        "method": request.method,
        "path": request.url.path,
    }
    log.info(
        "audit",
        at=at.isoformat(),
        actor=principal.name,
        action=action,
        subject_id=subject_id,
        services=list(services),
        message=message,
        **extra,
    )
    try:
        entry = await _audit_log(gateway(request).documents).append(
            principal.name, action, subject_id, message, services, details, at, extra=extra
        )
    except Exception as exc:  # see the docstring: the change happened; the log line keeps it
        log.error("audit entry not stored", error=str(exc), action=action, subject_id=subject_id)
    else:
        log.debug("audit entry stored", audit_id=entry.id, seq=entry.seq)
