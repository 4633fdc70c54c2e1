"""``/api/v1/runbooks``: the runbooks the action service loaded, a request to run one for an incident, and the
executions of one.

A request is published to ``approvals``; the action service proposes the execution (its dry run, blast radius and
the approvals its policy asks for), which then waits in ``GET /api/v1/approvals``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import structlog
from aiops_common.broker.publisher import Message
from aiops_common.documents import DocumentFilter
from aiops_common.schemas import ApprovalDecision, ApprovalRecord, ExecutionStatus
from aiops_common.topics import Topics
from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import ValidationError

from aiops_gateway.audit import audit
from aiops_gateway.auth import Principal, Role, require
from aiops_gateway.context import Gateway, gateway
from aiops_gateway.errors import ERROR_RESPONSES, ApiError
from aiops_gateway.routes.incidents import CONFLICT, incident_body
from aiops_gateway.views.executions import (
    ExecuteRequest,
    ExecutionList,
    ExecutionRequested,
    RunbookList,
    RunbookView,
    parameter_problems,
    readable_executions,
)

__all__ = ["RunbookId", "router", "runbook_body"]

log = structlog.get_logger(__name__)

router = APIRouter(tags=["runbooks"], responses=ERROR_RESPONSES)

RunbookId = Annotated[
    str, Path(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$", description="The runbook's id.")
]

_ACTIVE = tuple(s.value for s in ExecutionStatus if not s.terminal)


async def runbook_body(gw: Gateway, runbook_id: str) -> dict[str, Any]:
    """The loaded runbook's body; 404 when the action service loaded none by that id."""
    doc = await gw.within(gw.documents.get("runbooks", runbook_id))
    if doc is None:
        raise ApiError(404, f"no runbook {runbook_id!r} (the action service loaded none by that id)")
    return doc.body


def _view(body: dict[str, Any]) -> RunbookView | None:
    try:
        return RunbookView.model_validate(body)
    except ValidationError as exc:  # written by another version of the action service
        log.warning("stored runbook unreadable", runbook_id=body.get("id"), error=str(exc))
        return None


@router.get("/runbooks", response_model=RunbookList, summary="The runbooks the action service loaded")
async def list_runbooks(
    principal: Annotated[Principal, Depends(require(Role.VIEWER))],
    request: Request,
    risk: Annotated[
        str | None, Query(max_length=32, description="Only runbooks of this risk (low, medium, high).")
    ] = None,
    text: Annotated[str | None, Query(max_length=512, description="Words in the title.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
    cursor: Annotated[str | None, Query(max_length=1024, description="`next_cursor` of the previous page.")] = None,
) -> RunbookList:
    """Each with its parameters (type, where the incident supplies it, default), steps, rollback and check."""
    gw = gateway(request)
    terms = (("risk", risk),) if risk else ()
    page = await gw.page("runbooks", DocumentFilter(text=text or None, terms=terms), limit, cursor)
    views = [v for v in (_view(d.body) for d in page.documents) if v is not None]
    return RunbookList(runbooks=sorted(views, key=lambda v: v.id), next_cursor=page.cursor)


@router.get("/runbooks/{runbook_id}", response_model=RunbookView, summary="One loaded runbook")
async def get_runbook(
    principal: Annotated[Principal, Depends(require(Role.VIEWER))], request: Request, runbook_id: RunbookId
) -> RunbookView:
    view = _view(await runbook_body(gateway(request), runbook_id))
    if view is None:
        raise ApiError(404, f"runbook {runbook_id!r} is stored in a form this gateway cannot read")
    return view


@router.post(
    "/runbooks/{runbook_id}/execute",
    response_model=ExecutionRequested,
    status_code=202,
    responses=CONFLICT,
    summary="Ask for a runbook to run for an incident (proposed with its dry run, then approved by the policy)",
)
async def execute(
    runbook_id: RunbookId,
    body: ExecuteRequest,
    principal: Annotated[Principal, Depends(require(Role.OPERATOR))],
    request: Request,
) -> ExecutionRequested:
    """Checked here (the runbook and the incident exist, the incident is neither resolved nor merged, every
    parameter is one of the runbook's and of its type, no execution of it for the incident is still under way),
    then published to ``approvals``. The action service resolves the parameters, runs the dry run, computes the
    blast radius and asks for the approvals its policy requires; nothing runs before that."""
    gw = gateway(request)
    runbook = await runbook_body(gw, runbook_id)
    incident = await incident_body(gw, body.incident_id)
    if incident.get("merged_into"):
        raise ApiError(409, f"incident {body.incident_id} was merged into {incident['merged_into']}; act on that one")
    if incident.get("status") == "resolved":
        raise ApiError(409, f"incident {body.incident_id} is resolved; reopen it first")
    problems = parameter_problems(runbook, body.parameters)
    if problems:
        raise ApiError(400, "; ".join(problems))
    where = DocumentFilter(terms=(("incident_id", body.incident_id), ("action", runbook_id)))
    for doc in (await gw.within(gw.documents.query("executions", where, limit=20))).documents:
        if doc.body.get("status") in _ACTIVE:
            raise ApiError(
                409,
                f"execution {doc.id} of runbook {runbook_id} for incident {body.incident_id} is still"
                f" {doc.body['status']}; decide on it first",
            )
    request_id = getattr(request.state, "request_id", "")
    record = ApprovalRecord(
        decision=ApprovalDecision.REQUEST,
        by=principal.name,
        role=principal.role.value,
        via="api",
        at=datetime.now(UTC),
        comment=body.note,
        incident_id=body.incident_id,
        runbook_id=runbook_id,
        parameters=dict(body.parameters),
        request_id=request_id,
    )
    await gw.publisher.publish([Message(Topics.APPROVALS, record.encode(), key=record.key())])
    await audit(
        request,
        principal,
        "runbook.request",
        body.incident_id,
        body.note or f"requested runbook {runbook_id} for {body.incident_id}",
        incident.get("services", []),
        {"runbook_id": runbook_id, "parameters": record.parameters, "approval_id": record.id},
    )
    return ExecutionRequested(incident_id=body.incident_id, runbook_id=runbook_id, request_id=request_id)


@router.get(
    "/runbooks/{runbook_id}/status",
    response_model=ExecutionList,
    summary="A runbook's executions, newest first: proposed, approved, running, verified, rolled back",
)
async def status(
    principal: Annotated[Principal, Depends(require(Role.VIEWER))],
    request: Request,
    runbook_id: RunbookId,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    cursor: Annotated[str | None, Query(max_length=1024, description="`next_cursor` of the previous page.")] = None,
) -> ExecutionList:
    gw = gateway(request)
    await runbook_body(gw, runbook_id)
    page = await gw.page("executions", DocumentFilter(terms=(("action", runbook_id),)), limit, cursor)
    return ExecutionList(executions=readable_executions(d.body for d in page.documents), next_cursor=page.cursor)
