"""The gateway's probes and metrics (``/health``, ``/ready``, ``/metrics``) and ``/api/v1/me``."""

from __future__ import annotations

import os
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from pydantic import BaseModel

from aiops_gateway.auth import Principal, Role, require
from aiops_gateway.context import gateway
from aiops_gateway.errors import ERROR_RESPONSES

__all__ = ["router"]

router = APIRouter(tags=["system"])


class Health(BaseModel):
    status: str
    pid: int


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]


class Me(BaseModel):
    name: str
    role: str
    via: str


@router.get("/health", response_model=Health, summary="The process answers")
async def health() -> Health:
    return Health(status="ok", pid=os.getpid())


@router.get(
    "/ready",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "A store or the broker is not reachable"}},
    summary="The document store and the broker are reachable",
)
async def ready(request: Request) -> Any:
    gw = gateway(request)
    checks: dict[str, str] = {}
    try:
        await gw.within(gw.documents.count("incidents"))
        checks["documents"] = "ok"
    except Exception as exc:  # any failure means not ready; its name is the reason
        checks["documents"] = f"unreachable ({type(exc).__name__})"
    checks["broker"] = "ok" if await gw.publisher_reachable() else "unreachable"
    ok = all(v == "ok" for v in checks.values())
    body = Readiness(status="ready" if ok else "not ready", checks=checks)
    return body if ok else JSONResponse(body.model_dump(), 503)


@router.get("/metrics", summary="Prometheus metrics of this gateway process", response_class=Response)
async def metrics() -> Response:
    return Response(generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})


@router.get("/api/v1/me", response_model=Me, responses=ERROR_RESPONSES, summary="Who the credentials belong to")
async def me(principal: Annotated[Principal, Depends(require(Role.VIEWER))]) -> Me:
    return Me(name=principal.name, role=principal.role.value, via=principal.via)
