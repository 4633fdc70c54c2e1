"""Deployment events posted to ``POST /api/v1/events/deployment`` into change events."""

from __future__ import annotations

import hashlib

from aiops_common.schemas import ChangeEvent
from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from aiops_ingestion.normalize._errors import InvalidPayloadError
from aiops_ingestion.normalize._json_api import Timestamp
from aiops_ingestion.normalize._json_body import parse_json_body
from aiops_ingestion.normalize._labels import LabelChecker
from aiops_ingestion.normalize._limits import Limits
from aiops_ingestion.normalize._timestamps import datetime_from_ns

__all__ = ["DeploymentEvent", "deployment_id", "parse_deployment_event"]


class DeploymentEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)

    id: str | None = Field(None, min_length=1)
    """Absent: derived from service, version and time (see :func:`deployment_id`)."""
    kind: str = Field("deployment", min_length=1)
    service: str = Field(min_length=1)
    version: str = ""
    previous_version: str = ""
    environment: str = ""
    author: str = ""
    description: str = ""
    timestamp: Timestamp | None = Field(None, validation_alias=AliasChoices("timestamp", "at"))
    """When it happened (``timestamp`` or ``at``); absent: when it is received."""
    labels: dict[str, str] = Field(default_factory=dict)


def deployment_id(service: str, version: str, ts_ns: int) -> str:
    """Same deployment, same id: a retried POST (with its timestamp) is deduplicated downstream."""
    digest = hashlib.sha256(f"{service}\x1f{version}\x1f{ts_ns}".encode())
    return f"deploy-{digest.hexdigest()[:24]}"


def parse_deployment_event(
    body: bytes, limits: Limits, *, content_type: str | None = None, now_ms: int | None = None
) -> ChangeEvent:
    """``{"service": "checkout", "version": "1.4.2", "timestamp": "2024-05-01T12:00:00Z", ...}``."""
    event = parse_json_body(DeploymentEvent, body, content_type, "deployment event")
    window = limits.window(now_ms)
    ts_ns = window.now_ms * 1_000_000 if event.timestamp is None else event.timestamp
    problem = window.problem_ns(ts_ns) or LabelChecker(limits).problem(event.labels)
    if problem:
        raise InvalidPayloadError(f"invalid deployment event: {problem}")
    return ChangeEvent(
        id=event.id or deployment_id(event.service, event.version, ts_ns),
        kind=event.kind,
        service=event.service,
        version=event.version,
        previous_version=event.previous_version,
        environment=event.environment,
        author=event.author,
        description=event.description,
        at=datetime_from_ns(ts_ns),
        labels=dict(event.labels),
    )
