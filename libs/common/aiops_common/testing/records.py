"""Records tests publish as another layer would: an anomaly of one service's series window, a predicted crossing,
an incident revision."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from aiops_common.schemas import (
    AnomalyRecord,
    AnomalySeverity,
    CrossingDirection,
    IncidentMember,
    IncidentRecord,
    IncidentSeverity,
    JoinReason,
    MemberKind,
    PredictionRecord,
    anomaly_id,
    prediction_id,
    series_key,
)

__all__ = ["crossing_prediction", "incident_revision", "service_anomaly"]


def service_anomaly(
    series: str, service: str, at: datetime, window: timedelta = timedelta(seconds=10), value: float = 1.0
) -> AnomalyRecord:
    """A critical cascade anomaly of ``series{service=...}`` for the window starting ``at``, detected at its end."""
    key = f'{series}{{service="{service}"}}'
    return AnomalyRecord(
        id=anomaly_id(key, int(at.timestamp() * 1000), int(window.total_seconds() * 1000)),
        series_name=series,
        labels={"service": service},
        series_key=key,
        service=service,
        window_start=at,
        window_end=at + window,
        value=value,
        score=0.97,
        severity=AnomalySeverity.CRITICAL,
        detector="cascade",
        detected_at=at + window,
    )


def crossing_prediction(series: str, labels: Mapping[str, str], made_at: datetime) -> PredictionRecord:
    """A prediction made at ``made_at`` that ``series{labels}`` (at 80) crosses 95 from above in about 4 hours."""
    key = series_key(series, dict(labels))
    return PredictionRecord(
        id=prediction_id(key, 95.0, int(made_at.timestamp() * 1000), 60_000),
        series_name=series,
        labels=dict(labels),
        series_key=key,
        service=labels.get("service", ""),
        threshold=95.0,
        direction=CrossingDirection.ABOVE,
        value=80.0,
        slope_per_s=15.0 / (4 * 3600),
        predicted_at=made_at + timedelta(hours=4),
        earliest_at=made_at + timedelta(hours=3),
        horizon_s=21_600.0,
        confidence=0.95,
        made_at=made_at,
    )


def incident_revision(incident_id: str, revision: int, services: list[str], onset: datetime) -> IncidentRecord:
    """Revision ``revision`` of a major incident whose members are a latency anomaly of each of ``services``, all
    started at ``onset``; updated ``revision`` seconds after it."""
    members = [
        IncidentMember(
            fingerprint=f"f-{service}",
            kind=MemberKind.ANOMALY,
            name="red.latency_s:value_10s",
            service=service,
            started_at=onset,
            reason=JoinReason(rule="seed"),
            joined_at=onset,
        )
        for service in services
    ]
    return IncidentRecord(
        id=incident_id,
        revision=revision,
        title="slow",
        severity=IncidentSeverity.MAJOR,
        services=services,
        started_at=onset,
        updated_at=onset + timedelta(seconds=revision),
        members=members,
    )
