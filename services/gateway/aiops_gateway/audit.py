"""An audit entry for every mutating call: who, what, on which subject, from which request, with what result."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from fastapi import Request

from aiops_gateway.auth.roles import Principal
from aiops_gateway.context import gateway

__all__ = ["audit"]

log = structlog.get_logger(__name__)


async def audit(
    request: Request,
    principal: Principal,
    action: str,
    subject_id: str,
    message: str,
    services: Sequence[str] = (),
    details: dict[str, Any] | None = None,
) -> None:
    """Write the entry to the document store's ``audit`` collection (and the log).

    Called once the change is accepted; a store that cannot take the entry is logged, not raised, since the change
    itself already happened and the log line keeps the record.
    """
    at = datetime.now(UTC)
    request_id = getattr(request.state, "request_id", "")
    audit_id = f"gw-{at.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:12]}"
    entry: dict[str, Any] = {
        "id": audit_id,
        "at": at.isoformat(),
        "actor": principal.name,
        "actor_role": principal.role.value,
        "via": principal.via,
        "action": action,
        "subject_id": subject_id,
        "services": list(services),
        "message": message,
        "request_id": request_id,
        "method": request.method,
        "path": request.url.path,
        "details": details or {},
    }
    log.info("audit", **{k: v for k, v in entry.items() if k != "details"})
    try:
        await gateway(request).documents.upsert("audit", audit_id, entry)
    except Exception as exc:  # see the docstring: the change happened; the log line keeps it
        log.error("audit entry not stored", error=str(exc), audit_id=audit_id)
