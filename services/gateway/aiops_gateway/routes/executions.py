"""``/api/v1/executions``: runbook executions as the action service keeps them (collection ``executions``), each
with its steps, dry run, blast radius, approvals, verification and history."""

from __future__ import annotations

from typing import Annotated

from aiops_common.documents import DocumentFilter
from aiops_common.schemas import ExecutionRecord, ExecutionStatus
from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import ValidationError

from aiops_gateway.auth import Principal, Role, require
from aiops_gateway.context import Gateway, gateway
from aiops_gateway.errors import ERROR_RESPONSES, ApiError
from aiops_gateway.views.executions import ExecutionList, readable_executions

__all__ = [
    "Cursor",
    "ExecutionId",
    "IncidentFilter",
    "Limit",
    "ServiceFilter",
    "execution_page",
    "router",
    "stored_execution",
]

router = APIRouter(tags=["executions"], responses=ERROR_RESPONSES)

ExecutionId = Annotated[str, Path(min_length=1, max_length=512, description="The execution's id.")]
Limit = Annotated[int, Query(ge=1, le=500, description="At most this many.")]
Cursor = Annotated[str | None, Query(max_length=1024, description="`next_cursor` of the previous page.")]
IncidentFilter = Annotated[str | None, Query(max_length=512, description="Only executions for this incident.")]
ServiceFilter = Annotated[str | None, Query(max_length=256, description="Only executions touching this service.")]


async def stored_execution(gw: Gateway, execution_id: str) -> ExecutionRecord:
    """The stored execution; 404 when there is none (or none this gateway can read)."""
    doc = await gw.within(gw.documents.get("executions", execution_id))
    if doc is None:
        raise ApiError(404, f"no execution {execution_id!r}")
    try:
        return ExecutionRecord.from_document(doc.body)
    except ValidationError:
        raise ApiError(404, f"execution {execution_id!r} is stored in a form this gateway cannot read") from None


async def execution_page(
    gw: Gateway,
    incident_id: str | None,
    status: ExecutionStatus | None,
    service: str | None,
    limit: int,
    cursor: str | None,
) -> ExecutionList:
    terms = (("incident_id", incident_id),) if incident_id else ()
    where = DocumentFilter(status=None if status is None else status.value, service=service or None, terms=terms)
    page = await gw.page("executions", where, limit, cursor)
    return ExecutionList(executions=readable_executions(d.body for d in page.documents), next_cursor=page.cursor)


@router.get("/executions", response_model=ExecutionList, summary="Runbook executions, newest request first")
async def list_executions(
    principal: Annotated[Principal, Depends(require(Role.VIEWER))],
    request: Request,
    incident_id: IncidentFilter = None,
    status: Annotated[ExecutionStatus | None, Query(description="Only executions in this status.")] = None,
    service: ServiceFilter = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> ExecutionList:
    """Each whole: steps, rollback, dry run, blast radius, approvals, verification and history."""
    return await execution_page(gateway(request), incident_id, status, service, limit, cursor)


@router.get("/executions/{execution_id}", response_model=ExecutionRecord, summary="One execution, its whole life")
async def get_execution(
    principal: Annotated[Principal, Depends(require(Role.VIEWER))], request: Request, execution_id: ExecutionId
) -> ExecutionRecord:
    return await stored_execution(gateway(request), execution_id)
