"""``/api/v1/runbooks``: run a runbook for an incident and follow its execution.

They go through the approval policy of the action layer. Until that layer is installed they answer 501 with a
body that says so (after checking the request), so clients can be written against them now.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field

from aiops_gateway.auth import Principal, Role, require
from aiops_gateway.errors import ERROR_RESPONSES, ApiError, ErrorBody

__all__ = ["router"]

router = APIRouter(
    tags=["runbooks"],
    responses={**ERROR_RESPONSES, 501: {"model": ErrorBody, "description": "The action layer is not installed"}},
)

_NOT_YET = (
    "runbook executions need the action layer (services/action), which this installation does not run yet; "
    "nothing was requested"
)

RunbookId = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")]


class ExecuteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    incident_id: str = Field(min_length=1, max_length=200, description="The incident the execution is for.")
    parameters: dict[str, Any] = Field(default_factory=dict, description="The runbook's typed parameters.")
    note: str = Field(default="", max_length=2000, description="Why, for the approvers and the audit log.")
    dry_run: bool = Field(default=False, description="Only show what would be done.")


class ExecutionStatus(BaseModel):
    execution_id: str
    runbook_id: str
    status: str


@router.post(
    "/runbooks/{runbook_id}/execute",
    response_model=ExecutionStatus,
    status_code=202,
    summary="Request a runbook's execution (through the approval policy)",
)
async def execute(
    runbook_id: RunbookId,
    body: ExecuteRequest,
    principal: Annotated[Principal, Depends(require(Role.OPERATOR))],
) -> ExecutionStatus:
    raise ApiError(501, _NOT_YET)


@router.get(
    "/runbooks/{runbook_id}/status",
    response_model=ExecutionStatus,
    summary="The latest execution of a runbook: requested, approved, running, verified, rolled back",
)
async def status(
    runbook_id: RunbookId,
    principal: Annotated[Principal, Depends(require(Role.VIEWER))],
) -> ExecutionStatus:
    raise ApiError(501, _NOT_YET)
