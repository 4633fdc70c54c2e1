"""``/api/v1/approvals``: executions waiting for a decision, and approvers' decisions on them.

The gateway refuses early what it can see is refused (not pending, expired, the requester's own request, a second
approval by the same person), by the rules the action service applies (``aiops_common.approvals``); a decision it
accepts is published to ``approvals`` and applied by the action service, which remains the authority on the policy.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from aiops_common.approvals import DecisionError, approvals_needed, check_decision
from aiops_common.broker.publisher import Message
from aiops_common.schemas import ApprovalDecision, ApprovalRecord, ExecutionStatus
from aiops_common.topics import Topics
from fastapi import APIRouter, Depends, Request

from aiops_gateway.audit import audit
from aiops_gateway.auth import Principal, Role, require
from aiops_gateway.context import gateway
from aiops_gateway.errors import ERROR_RESPONSES, ApiError, ErrorBody
from aiops_gateway.routes.executions import (
    Cursor,
    ExecutionId,
    IncidentFilter,
    Limit,
    ServiceFilter,
    execution_page,
    stored_execution,
)
from aiops_gateway.views.executions import DecisionAccepted, DecisionRequest, ExecutionList

__all__ = ["router"]

router = APIRouter(tags=["approvals"], responses=ERROR_RESPONSES)

_DONE = {ApprovalDecision.APPROVE: "approved", ApprovalDecision.REJECT: "rejected"}

_DECISION_REFUSALS: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorBody, "description": "The caller is not an approver, or approves its own request"},
    409: {
        "model": ErrorBody,
        "description": "The execution is not pending approval, has expired, or the caller already approved it",
    },
}


@router.get(
    "/approvals",
    response_model=ExecutionList,
    summary="Executions waiting for approval (pending_approval), newest request first",
)
async def list_approvals(
    principal: Annotated[Principal, Depends(require(Role.VIEWER))],
    request: Request,
    incident_id: IncidentFilter = None,
    service: ServiceFilter = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> ExecutionList:
    """Each with what an approver decides on: the dry run, the blast radius, the policy and the approvals so far.
    One past its ``expires_at`` stays listed until the action service marks it expired."""
    return await execution_page(gateway(request), incident_id, ExecutionStatus.PENDING_APPROVAL, service, limit, cursor)


async def _decide(
    request: Request, principal: Principal, execution_id: str, body: DecisionRequest, decision: ApprovalDecision
) -> DecisionAccepted:
    gw = gateway(request)
    approving = decision is ApprovalDecision.APPROVE
    record = await stored_execution(gw, execution_id)
    now = datetime.now(UTC)
    try:
        check_decision(record, principal.name, decision, now)
    except DecisionError as exc:
        raise ApiError(exc.status, str(exc)) from None
    comment = body.comment.strip()
    if not approving and not comment:
        raise ApiError(400, "a rejection needs a comment: say why, for the requester and the audit log")
    request_id = getattr(request.state, "request_id", "")
    approval = ApprovalRecord(
        decision=decision,
        execution_id=record.id,
        by=principal.name,
        role=principal.role.value,
        via="api",
        at=now,
        comment=comment,
        request_id=request_id,
    )
    await gw.publisher.publish([Message(Topics.APPROVALS, approval.encode(), key=approval.key())])
    needed = approvals_needed(record, approving)
    await audit(
        request,
        principal,
        f"execution.{decision.value}",
        record.incident_id,
        comment or f"{_DONE[decision]} execution {record.id} ({record.runbook_id})",
        record.services,
        {
            "execution_id": record.id,
            "runbook_id": record.runbook_id,
            "approval_id": approval.id,
            "approvals_needed": needed,
        },
    )
    return DecisionAccepted(
        execution_id=record.id, decision="approve" if approving else "reject", approvals_needed=needed
    )


@router.post(
    "/approvals/{execution_id}/approve",
    response_model=DecisionAccepted,
    status_code=202,
    responses=_DECISION_REFUSALS,
    summary="Approve an execution waiting for approval",
)
async def approve(
    principal: Annotated[Principal, Depends(require(Role.APPROVER))],
    request: Request,
    execution_id: ExecutionId,
    body: DecisionRequest,
) -> DecisionAccepted:
    """Refused when it is not pending approval or has expired (409), when the caller requested it (403: a
    requester never approves its own request) or already approved it (409). The action service applies it: once
    the execution has the approvals its policy requires, it runs."""
    return await _decide(request, principal, execution_id, body, ApprovalDecision.APPROVE)


@router.post(
    "/approvals/{execution_id}/reject",
    response_model=DecisionAccepted,
    status_code=202,
    responses=_DECISION_REFUSALS,
    summary="Reject an execution waiting for approval (with a comment saying why)",
)
async def reject(
    principal: Annotated[Principal, Depends(require(Role.APPROVER))],
    request: Request,
    execution_id: ExecutionId,
    body: DecisionRequest,
) -> DecisionAccepted:
    """A comment is required (400 without one); refused when it is not pending approval or has expired (409). The
    requester may reject its own request (withdraw it). Nothing of it runs."""
    return await _decide(request, principal, execution_id, body, ApprovalDecision.REJECT)
