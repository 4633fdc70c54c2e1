"""``/api/v1/demo``: the demo shop's control API (``aiops demo``) behind the gateway's keys, for the UI's demo panel.

Set by ``AIOPS_GATEWAY_DEMO_URL``. Without it ``GET /demo`` answers ``{"enabled": false}`` (the panel stays hidden)
and the mutating routes 404. A fault is checked here before it is forwarded; the control API's own refusals (an
unknown service) come back with their status, and a control API that cannot be reached is a 503 with Retry-After.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any

import httpx
import structlog
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aiops_gateway.audit import audit
from aiops_gateway.auth import Principal, Role, require
from aiops_gateway.context import gateway
from aiops_gateway.errors import ERROR_RESPONSES, ApiError, ErrorBody

__all__ = ["FaultKind", "FaultRequest", "router"]

log = structlog.get_logger(__name__)

router = APIRouter(
    tags=["demo"], responses={**ERROR_RESPONSES, 409: {"model": ErrorBody, "description": "Refused by the demo"}}
)

_RETRY = {"Retry-After": "5"}
#: The control API's refusals that say something about the request, passed back as they are; any other answer but
#: a 2xx means the demo is not working as it should (or is another version), a 503.
_PASSED_BACK = frozenset({400, 404, 409, 422})
_NOT_CONFIGURED = "no demo is configured on this gateway (AIOPS_GATEWAY_DEMO_URL is not set; `aiops demo` sets it)"


class FaultKind(enum.StrEnum):
    LATENCY = "latency"
    ERRORS = "errors"
    CPU = "cpu"
    BAD_DEPLOY = "bad-deploy"


class FaultRequest(BaseModel):
    """A fault to inject into one of the shop's services."""

    model_config = ConfigDict(extra="forbid")
    service: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="One of the shop's services (frontend, checkout, payment, database, inventory).",
    )
    kind: FaultKind = Field(description="latency, errors, cpu (saturation) or bad-deploy (a broken version).")
    for_s: int = Field(default=300, ge=10, le=3600, description="How long the fault lasts, in seconds.")


class DemoService(BaseModel):
    """One service of the shop as the demo runs it now."""

    model_config = ConfigDict(extra="allow")
    replicas: int | None = None
    version: str | None = None
    healthy: bool | None = None


class DemoFault(BaseModel):
    """A fault in effect: when it started and until when it lasts (ISO-8601)."""

    model_config = ConfigDict(extra="allow")
    id: str
    service: str
    kind: str
    started_at: str | None = None
    until: str | None = None


class DemoStatus(BaseModel):
    """Whether this gateway has a demo; when it has, the shop's services and the faults in effect."""

    enabled: bool
    services: dict[str, DemoService] | None = Field(default=None, description="By name; absent without a demo.")
    faults: list[DemoFault] | None = Field(default=None, description="In effect now; absent without a demo.")


class FaultsCleared(BaseModel):
    cleared: int = Field(description="How many faults were in effect and are cleared.")


def _refusal_text(answer: httpx.Response) -> str:
    try:
        body = answer.json()
    except ValueError:
        body = None
    text = body.get("error") if isinstance(body, dict) else None
    return (text if isinstance(text, str) and text else answer.text or f"status {answer.status_code}")[:500]


async def _control(request: Request, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """The control API's JSON answer to one call; its refusals and its absence as the gateway's own answers."""
    gw = gateway(request)
    base = gw.settings.gateway_demo_url
    if not base:
        raise ApiError(404, _NOT_CONFIGURED)
    url = f"{base.rstrip('/')}{path}"
    headers = {"X-Request-ID": getattr(request.state, "request_id", ""), "Accept": "application/json"}
    try:
        answer = await gw.http.request(method, url, json=body, headers=headers)
    except httpx.HTTPError as exc:
        log.warning("demo control API unreachable", url=url, error=f"{type(exc).__name__}: {exc}")
        raise ApiError(
            503, "the demo's control API cannot be reached (is `aiops demo` running?); retry later", _RETRY
        ) from None
    if answer.status_code in _PASSED_BACK:
        raise ApiError(answer.status_code, f"the demo refused: {_refusal_text(answer)}")
    if not 200 <= answer.status_code < 300:
        log.error("demo control API failed", url=url, status=answer.status_code, body=answer.text[:500])
        raise ApiError(503, f"the demo's control API answered {answer.status_code}; retry later", _RETRY)
    try:
        return answer.json()
    except ValueError:
        log.error("demo control API answered no JSON", url=url, body=answer.text[:500])
        raise ApiError(503, "the demo's control API answered something that is not JSON; retry later", _RETRY) from None


def _read(model: type[BaseModel], data: Any, what: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:  # another version of the demo: say so rather than pass on what the UI cannot read
        log.error("demo control API answer unreadable", what=what, error=str(exc))
        raise ApiError(503, f"the demo's control API answered a {what} this gateway cannot read", _RETRY) from None


@router.get(
    "/demo",
    response_model=DemoStatus,
    response_model_exclude_none=True,
    summary="The demo shop: its services (replicas, version, health) and the faults in effect",
)
async def demo_status(principal: Annotated[Principal, Depends(require(Role.VIEWER))], request: Request) -> Any:
    """`{"enabled": false}` when this gateway has no demo (never an error, so the UI can ask on every load)."""
    if not gateway(request).settings.gateway_demo_url:
        return DemoStatus(enabled=False)
    data = await _control(request, "GET", "/status")
    return _read(DemoStatus, {**data, "enabled": True} if isinstance(data, dict) else data, "status")


@router.post(
    "/demo/faults",
    response_model=DemoFault,
    status_code=201,
    summary="Inject a fault into one of the demo shop's services, for a while",
)
async def inject_fault(
    body: FaultRequest, principal: Annotated[Principal, Depends(require(Role.OPERATOR))], request: Request
) -> Any:
    """Forwarded to the demo's control API; the fault it started comes back (its id, when it ends)."""
    sent = {"service": body.service, "kind": body.kind.value, "for_s": body.for_s}
    fault: DemoFault = _read(DemoFault, await _control(request, "POST", "/faults", sent), "fault")
    await audit(
        request,
        principal,
        "demo.fault",
        body.service,
        f"injected a {body.kind.value} fault into {body.service} for {body.for_s} s",
        [body.service],
        {"kind": body.kind.value, "for_s": body.for_s, "fault_id": fault.id, "until": fault.until},
    )
    return fault


@router.delete("/demo/faults", response_model=FaultsCleared, summary="Clear every fault of the demo shop")
async def clear_faults(principal: Annotated[Principal, Depends(require(Role.OPERATOR))], request: Request) -> Any:
    cleared: FaultsCleared = _read(FaultsCleared, await _control(request, "DELETE", "/faults"), "clearing")
    await audit(
        request, principal, "demo.clear", "demo", f"cleared {cleared.cleared} demo fault(s)", (), cleared.model_dump()
    )
    return cleared
