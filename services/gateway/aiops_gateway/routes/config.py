"""``/api/v1/config``: the detection configuration (versioned, picked up by detection without a restart) and
the topology file."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from aiops_common.documents.config_versions import detection_config_version, newest_detection_config
from aiops_common.schemas.config import DetectionConfig, DetectionConfigVersion
from aiops_common.topology import TopologyFileError, load_topology
from fastapi import APIRouter, Body, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from aiops_gateway.audit import audit
from aiops_gateway.auth import Principal, Role, require
from aiops_gateway.config_store import (
    ConfigConflictError,
    detection_versions,
    diff_summary,
    write_detection,
)
from aiops_gateway.context import gateway
from aiops_gateway.errors import ERROR_RESPONSES, ApiError, ErrorBody

__all__ = ["router"]

router = APIRouter(tags=["config"], responses=ERROR_RESPONSES)

_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorBody, "description": "Another version is current (read it again)"}
}


class DetectionConfigOut(BaseModel):
    """A version of the detection configuration; version 0 (no ``at``) when none was ever set."""

    kind: str = "detection"
    version: int = Field(ge=0)
    at: datetime | None = None
    by: str = ""
    note: str = ""
    config: DetectionConfig

    @classmethod
    def of(cls, stored: DetectionConfigVersion | None) -> DetectionConfigOut:
        if stored is None:
            return cls(version=0, config=DetectionConfig())
        return cls.model_validate(stored.model_dump())


class DetectionConfigVersions(BaseModel):
    versions: list[DetectionConfigOut]


class DetectionConfigUpdate(BaseModel):
    config: DetectionConfig
    note: str = Field(default="", max_length=2000, description="Why, for the history and the audit entry.")
    expected_version: int | None = Field(
        default=None, ge=0, description="The version the change is based on (0: none yet); another current: 409."
    )


class TopologyLoaded(BaseModel):
    services: int
    dependencies: int


@router.get("/config/detection", response_model=DetectionConfigOut, summary="The current detection configuration")
async def get_detection(
    principal: Annotated[Principal, Depends(require(Role.VIEWER))], request: Request
) -> DetectionConfigOut:
    return DetectionConfigOut.of(await newest_detection_config(gateway(request).documents))


@router.get(
    "/config/detection/versions",
    response_model=DetectionConfigVersions,
    summary="Versions of the detection configuration, newest first",
)
async def list_detection_versions(
    principal: Annotated[Principal, Depends(require(Role.VIEWER))],
    request: Request,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> DetectionConfigVersions:
    found = await detection_versions(gateway(request).documents, limit)
    return DetectionConfigVersions(versions=[DetectionConfigOut.of(v) for v in found])


@router.get(
    "/config/detection/versions/{version}",
    response_model=DetectionConfigOut,
    summary="One version of the detection configuration",
)
async def get_detection_version(
    principal: Annotated[Principal, Depends(require(Role.VIEWER))],
    request: Request,
    version: Annotated[int, Path(ge=1, le=2**53)],
) -> DetectionConfigOut:
    found = await detection_config_version(gateway(request).documents, version)
    if found is None:
        raise ApiError(404, f"no detection configuration version {version}")
    return DetectionConfigOut.of(found)


@router.put(
    "/config/detection",
    response_model=DetectionConfigOut,
    responses=_CONFLICT,
    summary="Set the detection configuration (a new version; detection picks it up without a restart)",
)
async def put_detection(
    principal: Annotated[Principal, Depends(require(Role.ADMIN))],
    request: Request,
    update: DetectionConfigUpdate,
) -> DetectionConfigOut:
    try:
        made, previous = await write_detection(
            gateway(request).documents, update.config, principal.name, update.note, update.expected_version
        )
    except ConfigConflictError as exc:
        raise ApiError(409, exc.message) from None
    summary = diff_summary(None if previous is None else previous.config, made.config)
    await audit(
        request,
        principal,
        "config.detection.update",
        f"detection.v{made.version}",
        f"detection configuration version {made.version}: {summary}",
        details={"version": made.version, "previous_version": made.version - 1, "diff": summary, "note": made.note},
    )
    return DetectionConfigOut.of(made)


@router.put(
    "/config/topology",
    response_model=TopologyLoaded,
    summary="Load a topology file (services and their dependencies) into the topology store",
)
async def put_topology(
    principal: Annotated[Principal, Depends(require(Role.ADMIN))],
    request: Request,
    payload: Annotated[
        dict[str, Any],
        Body(
            description='As `aiops topology load` takes it: `{"services": [{"name", "tier", "zone", "team", ...}],'
            ' "dependencies": [{"from": caller, "to": callee}]}`.'
        ),
    ],
) -> TopologyLoaded:
    try:
        loaded = await load_topology(gateway(request).topology, payload, datetime.now(UTC))
    except TopologyFileError as exc:
        raise ApiError(400, str(exc)) from None
    result = TopologyLoaded(services=len(loaded.services), dependencies=len(loaded.dependencies))
    await audit(
        request,
        principal,
        "config.topology.load",
        "topology",
        f"topology file loaded: {result.services} services, {result.dependencies} dependencies",
        services=[s.name for s in loaded.services][:100],
        details=result.model_dump(),
    )
    return result
