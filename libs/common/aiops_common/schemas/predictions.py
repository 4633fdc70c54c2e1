"""Predictive alerts, e.g. a disk that will be full within hours: the value type of ``predictions``."""

from __future__ import annotations

import enum
from datetime import datetime

from pydantic import Field

from aiops_common.schemas._ids import record_id
from aiops_common.schemas._model import VersionedRecord

__all__ = ["CrossingDirection", "PredictionRecord", "prediction_id"]


class CrossingDirection(enum.StrEnum):
    ABOVE = "above"  # the series rises through an upper limit
    BELOW = "below"  # the series falls through a lower limit


def prediction_id(series_key: str, threshold: float, window_start_ms: int, length_ms: int) -> str:
    """Deterministic id of the prediction made at one series window for one threshold."""
    return record_id("pr", series_key, repr(threshold), window_start_ms, length_ms)


class PredictionRecord(VersionedRecord):
    """A series' trend will cross a threshold within the horizon."""

    schema_name = "predictions.crossing"

    id: str
    series_name: str
    labels: dict[str, str] = Field(default_factory=dict)
    series_key: str
    service: str = ""
    threshold: float
    direction: CrossingDirection
    value: float
    """The trend's level at the latest window."""
    slope_per_s: float
    predicted_at: datetime
    """When the trend line reaches the threshold."""
    earliest_at: datetime
    """When it reaches it at the steeper end of the slope's confidence interval (the cautious time)."""
    horizon_s: float
    """How far ahead the forecaster looked."""
    confidence: float
    """Confidence level of the slope interval behind ``earliest_at``."""
    made_at: datetime
    """End of the window the prediction was made from (event time)."""
