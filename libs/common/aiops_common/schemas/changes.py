"""Deployment and configuration change events: the value type of ``changes``."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from aiops_common.schemas._model import VersionedRecord

__all__ = ["ChangeEvent"]


class ChangeEvent(VersionedRecord):
    schema_name = "changes.event"

    id: str
    kind: str = "deployment"  # deployment, config, feature_flag, scale, ...
    service: str
    version: str = ""
    previous_version: str = ""
    environment: str = ""
    author: str = ""
    description: str = ""
    at: datetime
    labels: dict[str, str] = Field(default_factory=dict)
