"""``/api/v1/audit``: the hash-chained audit log, read (who did what, on which subject) and verified."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from aiops_common.audit import AUDIT_COLLECTION, parse_head, verify
from aiops_common.documents import DocumentFilter
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from aiops_gateway.auth import Principal, Role, require
from aiops_gateway.context import gateway
from aiops_gateway.errors import ERROR_RESPONSES, ApiError
from aiops_gateway.routes.anomalies import instant_param

__all__ = ["router"]

router = APIRouter(tags=["audit"], responses=ERROR_RESPONSES)


class AuditEntryView(BaseModel):
    """One entry as stored: its place in the chain, its hashes, and what was done by whom."""

    model_config = ConfigDict(extra="allow")
    seq: int | None = Field(default=None, description="Place in the chain (none for entries older than the chain).")
    hash: str | None = None
    prev_hash: str | None = None
    at: str
    actor: str = ""
    action: str = ""
    subject_id: str = ""
    message: str = ""


class AuditPage(BaseModel):
    entries: list[AuditEntryView] = Field(description="Newest first.")
    next_cursor: str | None = None


class ChainProblem(BaseModel):
    kind: str
    seq: int
    message: str


class ChainHead(BaseModel):
    seq: int
    hash: str


class AuditVerification(BaseModel):
    entries: int
    intact: bool
    head: ChainHead | None
    problems: list[ChainProblem]
    counts: dict[str, int]


@router.get(
    "/audit", response_model=AuditPage, summary="Audit entries, newest first: of a subject, an actor, an action"
)
async def list_audit(
    principal: Annotated[Principal, Depends(require(Role.VIEWER))],
    request: Request,
    subject_id: Annotated[str | None, Query(max_length=512, description="What was acted on (an incident id).")] = None,
    actor: Annotated[str | None, Query(max_length=256)] = None,
    action: Annotated[str | None, Query(max_length=256)] = None,
    since: Annotated[str | None, Query(max_length=64, description="From (ISO-8601, or 30m, 6h, 7d ago).")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=1024)] = None,
) -> AuditPage:
    gw = gateway(request)
    terms = tuple((k, v) for k, v in (("subject_id", subject_id), ("actor", actor), ("action", action)) if v)
    start = None if since is None else instant_param(since, "since", datetime.now(UTC))
    page = await gw.page(AUDIT_COLLECTION, DocumentFilter(start=start, terms=terms), limit, cursor)
    return AuditPage(entries=[AuditEntryView.model_validate(d.body) for d in page.documents], next_cursor=page.cursor)


@router.post(
    "/audit/verify",
    response_model=AuditVerification,
    summary="Recompute the audit chain: any entry edited, deleted or moved is named (as `aiops audit verify`)",
)
async def verify_audit(
    principal: Annotated[Principal, Depends(require(Role.ADMIN))],
    request: Request,
    head: Annotated[
        str | None, Query(max_length=100, description="SEQ:HASH of an earlier verification: a cut tail shows too.")
    ] = None,
) -> Any:
    try:
        expected = None if head is None else parse_head(head)
    except ValueError as exc:
        raise ApiError(400, f"head: {exc}") from None
    # An admin's: it reads the whole chain (0.2 s for 10,000 entries on SQLite), so it is not a viewer's read.
    report = await verify(gateway(request).documents, expected_head=expected)
    return report.to_json()
