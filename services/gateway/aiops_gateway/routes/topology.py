"""``/api/v1/topology``: services, their call edges and recent changes, from the topology store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from aiops_common.topology import AttributeValue, Change, Dependency, Service
from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel

from aiops_gateway.auth import Principal, Role, require
from aiops_gateway.context import gateway
from aiops_gateway.errors import ERROR_RESPONSES, ApiError

__all__ = ["router"]

router = APIRouter(tags=["topology"], responses=ERROR_RESPONSES)


class ServiceOut(BaseModel):
    name: str
    tier: AttributeValue | None = None
    zone: AttributeValue | None = None
    team: AttributeValue | None = None
    attributes: dict[str, AttributeValue]

    @classmethod
    def of(cls, service: Service) -> ServiceOut:
        return cls(
            name=service.name,
            tier=service.tier,
            zone=service.zone,
            team=service.team,
            attributes=dict(service.attributes),
        )


class DependencyOut(BaseModel):
    caller: str
    callee: str
    sources: list[str]
    """Who said so: ``file`` (the topology file), ``traces``."""
    first_seen: datetime
    last_seen: datetime

    @classmethod
    def of(cls, dependency: Dependency) -> DependencyOut:
        return cls(
            caller=dependency.caller,
            callee=dependency.callee,
            sources=sorted(dependency.sources),
            first_seen=dependency.first_seen,
            last_seen=dependency.last_seen,
        )


class ChangeOut(BaseModel):
    id: str
    service: str
    at: datetime
    kind: str
    description: str
    attributes: dict[str, AttributeValue]

    @classmethod
    def of(cls, change: Change) -> ChangeOut:
        return cls(
            id=change.id,
            service=change.service,
            at=change.at,
            kind=change.kind,
            description=change.description,
            attributes=dict(change.attributes),
        )


class Topology(BaseModel):
    services: list[ServiceOut]
    dependencies: list[DependencyOut]


class ServiceDetail(BaseModel):
    service: ServiceOut
    upstream: list[DependencyOut]
    """Edges of the services that call this one."""
    downstream: list[DependencyOut]
    """Edges to the services this one calls."""
    changes: list[ChangeOut]
    """Changes made to the service within ``changes_since``, newest first."""


@router.get("/topology", response_model=Topology, summary="Every service and call edge")
async def get_topology(principal: Annotated[Principal, Depends(require(Role.VIEWER))], request: Request) -> Topology:
    store = gateway(request).topology
    return Topology(
        services=[ServiceOut.of(s) for s in await store.services()],
        dependencies=[DependencyOut.of(d) for d in await store.dependencies()],
    )


@router.get(
    "/topology/services/{name}",
    response_model=ServiceDetail,
    summary="One service: its callers, its callees and its recent changes",
)
async def get_service(
    principal: Annotated[Principal, Depends(require(Role.VIEWER))],
    request: Request,
    name: Annotated[str, Path(min_length=1, max_length=256)],
    changes_days: Annotated[float, Query(gt=0, le=365, description="How many days of changes to list.")] = 7.0,
) -> ServiceDetail:
    store = gateway(request).topology
    service = await store.service(name)
    if service is None:
        raise ApiError(404, f"no service {name!r} in the topology")
    around = await store.neighbourhood([name], 1, "both")
    now = datetime.now(UTC)
    changes = await store.changes(now - timedelta(days=changes_days), now + timedelta(minutes=1), [name])
    return ServiceDetail(
        service=ServiceOut.of(service),
        upstream=[DependencyOut.of(e) for e in around.edges if e.callee == name and e.caller != name],
        downstream=[DependencyOut.of(e) for e in around.edges if e.caller == name and e.callee != name],
        changes=[ChangeOut.of(c) for c in reversed(changes)],
    )
