"""Alertmanager webhook notifications (payload version 4) into alert records."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from aiops_common.schemas import AlertRecord, AlertStatus
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from aiops_ingestion.normalize._errors import Rejections
from aiops_ingestion.normalize._json_body import parse_json_body
from aiops_ingestion.normalize._labels import LabelChecker
from aiops_ingestion.normalize._limits import Limits

__all__ = ["AlertmanagerAlert", "AlertmanagerWebhook", "alertmanager_fingerprint", "parse_alertmanager_webhook"]

_FNV64_OFFSET = 0xCBF29CE484222325
_FNV64_PRIME = 0x100000001B3
_U64 = (1 << 64) - 1
_SEPARATOR = 0xFF
_DEFAULT_LIMITS = Limits()


class AlertmanagerAlert(BaseModel):
    # Alertmanager adds fields over time; unknown ones are ignored, not refused.
    model_config = ConfigDict(extra="ignore", frozen=True)

    status: AlertStatus
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: AwareDatetime = Field(alias="startsAt")
    ends_at: AwareDatetime | None = Field(None, alias="endsAt")
    generator_url: str = Field("", alias="generatorURL")
    fingerprint: str = ""


class AlertmanagerWebhook(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    version: Literal["4"] = "4"
    status: AlertStatus
    receiver: str = ""
    alerts: list[AlertmanagerAlert]
    group_labels: dict[str, str] = Field(default_factory=dict, alias="groupLabels")
    common_labels: dict[str, str] = Field(default_factory=dict, alias="commonLabels")
    common_annotations: dict[str, str] = Field(default_factory=dict, alias="commonAnnotations")
    external_url: str = Field("", alias="externalURL")
    group_key: str = Field("", alias="groupKey")
    truncated_alerts: int = Field(0, alias="truncatedAlerts")


def alertmanager_fingerprint(labels: Mapping[str, str]) -> str:
    """The fingerprint Alertmanager gives a label set: FNV-1a 64 over sorted ``name 0xff value 0xff``.

    Same algorithm as ``model.LabelSet.Fingerprint()`` in prometheus/common, so an
    alert without a fingerprint gets the one Alertmanager would have sent.
    """
    state = _FNV64_OFFSET
    for name in sorted(labels):
        for part in (name, labels[name]):
            for byte in part.encode():
                state = ((state ^ byte) * _FNV64_PRIME) & _U64
            state = ((state ^ _SEPARATOR) * _FNV64_PRIME) & _U64
    return f"{state:016x}"


def parse_alertmanager_webhook(
    body: bytes, limits: Limits = _DEFAULT_LIMITS, *, content_type: str | None = None
) -> list[AlertRecord]:
    """One alert record per alert of the notification.

    ``endsAt`` of ``0001-01-01T00:00:00Z`` (Alertmanager's zero time, sent for
    firing alerts) becomes None. Name from ``labels.alertname``, service from
    ``labels.service`` or else ``labels.job``, severity from ``labels.severity``.
    """
    webhook = parse_json_body(AlertmanagerWebhook, body, content_type, "Alertmanager webhook")
    checker = LabelChecker(limits)
    rejections = Rejections("alerts")
    records: list[AlertRecord] = []
    for index, alert in enumerate(webhook.alerts):
        labels = alert.labels
        problem = checker.problem(labels)
        if problem:
            rejections.add(f"alerts[{index}] {labels.get('alertname', '')!r}", problem)
            continue
        ends_at = alert.ends_at if alert.ends_at is not None and alert.ends_at.year > 1 else None
        records.append(
            AlertRecord(
                fingerprint=alert.fingerprint or alertmanager_fingerprint(labels),
                status=alert.status,
                name=labels.get("alertname", ""),
                service=labels.get("service") or labels.get("job", ""),
                severity=labels.get("severity", ""),
                labels=labels,
                annotations=alert.annotations,
                starts_at=alert.starts_at,
                ends_at=ends_at,
                generator_url=alert.generator_url,
                receiver=webhook.receiver,
            )
        )
    rejections.raise_if_any(len(webhook.alerts))
    return records
