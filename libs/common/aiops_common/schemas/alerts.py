"""Alerts from Alertmanager webhooks (and later other sources): the value type of ``alerts.raw``."""

from __future__ import annotations

import enum
from datetime import datetime

from pydantic import Field

from aiops_common.schemas._model import VersionedRecord

__all__ = ["AlertRecord", "AlertStatus"]


class AlertStatus(enum.StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class AlertRecord(VersionedRecord):
    schema_name = "alerts.alert"

    fingerprint: str
    status: AlertStatus
    name: str
    service: str = ""
    severity: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime
    ends_at: datetime | None = None
    generator_url: str = ""
    source: str = "alertmanager"
    receiver: str = ""

    @property
    def dedup_key(self) -> str:
        """Same alert, same state, same episode: delivered more than once means a duplicate."""
        return f"{self.fingerprint}:{self.status.value}:{self.starts_at.isoformat()}"
