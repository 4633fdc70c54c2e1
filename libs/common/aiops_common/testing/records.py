"""Records tests publish as another layer would: an anomaly of one service's series window."""

from __future__ import annotations

from datetime import datetime, timedelta

from aiops_common.schemas import AnomalyRecord, AnomalySeverity, anomaly_id

__all__ = ["service_anomaly"]


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
