"""The detection layer's records: wire round trip, deterministic ids, the topic table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from aiops_common.schemas import (
    AnomalyRecord,
    AnomalySeverity,
    CrossingDirection,
    FeedbackLabel,
    FeedbackRecord,
    PredictionRecord,
    SchemaError,
    anomaly_id,
    prediction_id,
)
from aiops_common.topics import Topics

pytestmark = pytest.mark.unit

AT = datetime(2026, 1, 1, tzinfo=UTC)
KEY = 'cpu{host="a"}'


def test_records_round_trip_and_refuse_each_other() -> None:
    anomaly = AnomalyRecord(
        id=anomaly_id(KEY, 0, 60_000),
        series_name="cpu",
        labels={"host": "a"},
        series_key=KEY,
        window_start=AT,
        window_end=AT + timedelta(minutes=1),
        value=14.0,
        score=0.97,
        lower=8.0,
        upper=12.0,
        severity=AnomalySeverity.CRITICAL,
        detector="cascade",
        evidence={"basic": 0.97, "agile": 1.0},
        model="cascade-60s",
        model_version=3,
        detected_at=AT,
    )
    prediction = PredictionRecord(
        id=prediction_id(KEY, 95.0, 0, 60_000),
        series_name="cpu",
        series_key=KEY,
        threshold=95.0,
        direction=CrossingDirection.ABOVE,
        value=80.0,
        slope_per_s=0.001,
        predicted_at=AT + timedelta(hours=4),
        earliest_at=AT + timedelta(hours=3),
        horizon_s=21600.0,
        confidence=0.9,
        made_at=AT,
    )
    feedback = FeedbackRecord(subject_id=anomaly.id, label=FeedbackLabel.FALSE_POSITIVE, by="ops", at=AT)
    for record in (anomaly, prediction, feedback):
        assert type(record).decode(record.encode()) == record
    with pytest.raises(SchemaError):
        AnomalyRecord.decode(feedback.encode())
    assert Topics.ANOMALIES.value_type is AnomalyRecord
    assert Topics.PREDICTIONS.value_type is PredictionRecord
    assert Topics.FEEDBACK.value_type is FeedbackRecord


def test_ids_are_deterministic_and_tell_windows_apart() -> None:
    assert anomaly_id(KEY, 0, 60_000) == anomaly_id(KEY, 0, 60_000)
    assert len({anomaly_id(KEY, 0, 60_000), anomaly_id(KEY, 60_000, 60_000), anomaly_id(KEY, 0, 300_000)}) == 3
    assert prediction_id(KEY, 95.0, 0, 60_000) != prediction_id(KEY, 90.0, 0, 60_000)
    label = FeedbackRecord(subject_id="an-1", label=FeedbackLabel.TRUE_POSITIVE, by="ops", at=AT)
    assert label.id == FeedbackRecord.decode(label.encode()).id
    assert label.id != label.model_copy(update={"label": FeedbackLabel.FALSE_POSITIVE}).id
