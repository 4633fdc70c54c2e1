"""Detected anomalies, one per series window: the value type of ``anomalies``."""

from __future__ import annotations

import enum
from datetime import datetime

from pydantic import Field

from aiops_common.schemas._ids import record_id
from aiops_common.schemas._model import VersionedRecord

__all__ = ["AnomalyRecord", "AnomalySeverity", "anomaly_id"]


class AnomalySeverity(enum.StrEnum):
    MINOR = "minor"
    MAJOR = "major"
    CRITICAL = "critical"


def anomaly_id(series_key: str, window_start_ms: int, length_ms: int) -> str:
    """Deterministic id of the anomaly of one series window: a re-detected window gets the same id.

    >>> anomaly_id('up{job="api"}', 0, 60_000) == anomaly_id('up{job="api"}', 0, 60_000)
    True
    """
    return record_id("an", series_key, window_start_ms, length_ms)


class AnomalyRecord(VersionedRecord):
    """One series window that the detectors found anomalous, with the evidence to judge it."""

    schema_name = "anomalies.anomaly"

    id: str
    """``anomaly_id(series_key, window_start_ms, length_ms)``: delivered again, it is the same anomaly."""
    series_name: str
    labels: dict[str, str] = Field(default_factory=dict)
    series_key: str
    service: str = ""
    window_start: datetime
    window_end: datetime
    value: float | None
    """The observed value the detectors judged (the window's ``value``, or ``p95`` for latency)."""
    score: float
    """Anomaly score in [0, 1] of the detector that raised it."""
    lower: float | None = None
    upper: float | None = None
    """Expected band of ``value`` from the detector; None where the detector has none (silence, latency)."""
    slack: float = 0.0
    """Band widths that operator feedback added on each side of the band: only a value beyond that alerts."""
    severity: AnomalySeverity
    detector: str
    """The detector that raised it: ``cascade``, ``error_rate``, ``latency``, ``silence`` or ``static``."""
    evidence: dict[str, float] = Field(default_factory=dict)
    """Score of every detector and tier that ran on the window (``basic``, ``agile``, ``robust``, ...)."""
    model: str = ""
    """Name of the trained model in the model registry the series ran on; empty: learned online only."""
    model_version: int | None = None
    detected_at: datetime
