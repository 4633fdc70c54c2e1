"""What the correlator clusters: one signal per alert episode, anomaly or prediction, from their records."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from aiops_common.schemas import (
    AlertRecord,
    AlertStatus,
    AnomalyRecord,
    IncidentSeverity,
    MemberKind,
    PredictionRecord,
)
from aiops_common.topology import millis

__all__ = ["Signal", "from_alert", "from_anomaly", "from_prediction", "severity_of"]

# Alertmanager labels that say which service an alert is about, most specific first.
_SERVICE_LABELS = ("service", "service_name", "app", "application", "job", "deployment", "container")

_SEVERITY_WORDS = {
    "critical": IncidentSeverity.CRITICAL,
    "page": IncidentSeverity.CRITICAL,
    "high": IncidentSeverity.MAJOR,
    "major": IncidentSeverity.MAJOR,
    "error": IncidentSeverity.MAJOR,
    "medium": IncidentSeverity.MINOR,
    "minor": IncidentSeverity.MINOR,
    "warning": IncidentSeverity.WARNING,
    "warn": IncidentSeverity.WARNING,
    "low": IncidentSeverity.WARNING,
    "info": IncidentSeverity.INFO,
    "none": IncidentSeverity.INFO,
}


def severity_of(word: str) -> IncidentSeverity:
    """An alert's ``severity`` label on the incident scale (an unknown word is a warning).

    >>> severity_of("Critical"), severity_of("P3")
    (<IncidentSeverity.CRITICAL: 'critical'>, <IncidentSeverity.WARNING: 'warning'>)
    """
    return _SEVERITY_WORDS.get(word.strip().lower(), IncidentSeverity.WARNING)


@dataclass(frozen=True, slots=True)
class Signal:
    """One thing that may belong in an incident, at its onset in event time.

    ``key`` names the signal across episodes (an alert's name and service and instance, an anomaly's
    series): episodes of one key in one incident fold into one member. Dynamic-X-Y counts events by
    ``policy_key`` (or ``key``). ``fingerprint`` names this member (Alertmanager's fingerprint, the
    anomaly or prediction id).
    """

    fingerprint: str
    kind: MemberKind
    key: str
    name: str
    service: str
    severity: IncidentSeverity
    at_ms: int
    labels: Mapping[str, str] = field(default_factory=dict)
    policy_key: str = ""
    """What Dynamic-X-Y learns by, when coarser than ``key``: an alert's name and service, so every pod of a
    service shares one learned policy and a pod that is new has it at once. Empty: ``key``."""
    resolved: bool = False
    """True for the end of an episode (an alert resolved): it closes the member, it opens nothing."""
    end_ms: int | None = None


def _service(labels: Mapping[str, str], given: str) -> str:
    if given:
        return given
    return next((labels[name] for name in _SERVICE_LABELS if labels.get(name)), "")


def from_alert(alert: AlertRecord) -> Signal:
    labels = dict(alert.labels)
    service = _service(labels, alert.service)
    instance = labels.get("instance", labels.get("pod", ""))
    resolved = alert.status == AlertStatus.RESOLVED
    return Signal(
        fingerprint=alert.fingerprint,
        kind=MemberKind.ALERT,
        key=f"alert:{alert.name}:{service}:{instance}",
        policy_key=f"alert:{alert.name}:{service}",
        name=alert.name,
        service=service,
        severity=severity_of(alert.severity or labels.get("severity", "")),
        at_ms=millis(alert.starts_at),
        labels=labels,
        resolved=resolved,
        end_ms=millis(alert.ends_at) if resolved and alert.ends_at is not None else None,
    )


def from_anomaly(anomaly: AnomalyRecord) -> Signal:
    labels = dict(anomaly.labels)
    return Signal(
        fingerprint=anomaly.id,
        kind=MemberKind.ANOMALY,
        key=f"anomaly:{anomaly.series_key}",
        name=anomaly.series_name,
        service=_service(labels, anomaly.service),
        severity=IncidentSeverity(anomaly.severity.value),
        at_ms=millis(anomaly.window_start),
        labels=labels,
        end_ms=millis(anomaly.window_end),
    )


def from_prediction(prediction: PredictionRecord) -> Signal:
    labels = dict(prediction.labels)
    return Signal(
        fingerprint=prediction.id,
        kind=MemberKind.PREDICTION,
        key=f"prediction:{prediction.series_key}:{prediction.threshold!r}",
        name=prediction.series_name,
        service=_service(labels, prediction.service),
        severity=IncidentSeverity.WARNING,
        at_ms=millis(prediction.made_at),
        labels=labels,
    )
