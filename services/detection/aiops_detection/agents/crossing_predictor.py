"""Agent: predictive alerts ("disk full within 6 hours") from ``features`` to ``predictions``.

Every series whose metric name has configured limits (``detect_static_thresholds``,
e.g. ``{"disk_used_percent": [null, 95]}``) gets a robust trend forecaster per window
length. After each window it asks whether the trend crosses a limit within
``detect_forecast_horizon_s``: rising through the upper one, or falling through the
lower one. A crossing still predicted is published again at most every
``detect_prediction_repeat_s`` of event time. State is checkpointed like the anomaly
detector's (``partition_state``). Predictions also go to the document store's ``predictions``
collection, where the API finds them.
"""

from __future__ import annotations

import asyncio
import math
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime

import faust
import numpy as np
import structlog
from aiops_common.documents import DocumentStore
from aiops_common.schemas import CrossingDirection, FeatureBatch, PredictionRecord, SeriesMeta, prediction_id
from aiops_common.topics import Topics, declare

from aiops_detection.agents.anomaly_archive import write_documents
from aiops_detection.agents.partition_state import FeatureStage, SeriesStates
from aiops_detection.detectors import forecaster
from aiops_detection.detectors.fingerprint import code_fingerprint
from aiops_detection.detectors.forecaster import CrossingForecast, CrossingForecaster
from aiops_detection.detectors.series_detectors import service_of
from aiops_detection.service_settings import DetectionServiceSettings

__all__ = ["CrossingPartition", "CrossingState", "install"]

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class CrossingState:
    forecaster: CrossingForecaster
    last_start_ms: int = -1
    published_ms: dict[float, int] = field(default_factory=dict)
    """Event time each threshold's crossing was last published."""


_FINGERPRINT = code_fingerprint(forecaster, sys.modules[__name__])


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class CrossingPartition(SeriesStates[CrossingState]):
    """The forecasters of every limited series of one ``features`` partition."""

    state_type = CrossingState
    fingerprint = _FINGERPRINT

    def __init__(self, partition: int, settings: DetectionServiceSettings) -> None:
        super().__init__()
        self.partition = partition
        self.settings = settings
        self.limits = settings.detect_static_thresholds
        self.lengths = np.asarray(settings.window_lengths_ms, dtype=np.int64)

    def process(self, batch: FeatureBatch) -> list[PredictionRecord]:
        limited = np.fromiter((m.name in self.limits for m in batch.series), dtype=bool, count=len(batch.series))
        rows = np.flatnonzero(limited[batch.sid] & np.isin(batch.length_ms, self.lengths))
        if rows.size == 0:
            return []
        rows = rows[np.lexsort((batch.start_ms[rows], batch.sid[rows]))]
        out: list[PredictionRecord] = []
        for sid, start, length, value, absent in zip(
            batch.sid[rows].tolist(),
            batch.start_ms[rows].tolist(),
            batch.length_ms[rows].tolist(),
            batch.column("value")[rows].tolist(),
            batch.column("absent")[rows].tolist(),
            strict=True,
        ):
            meta = batch.series[sid]
            ident = f"{meta.key}@{length}"
            state = self.states.get(ident)
            if state is None:
                state = self.states[ident] = CrossingState(CrossingForecaster())
            if start <= state.last_start_ms:
                continue  # delivered again
            state.last_start_ms = start
            self._changed.add(ident)
            if absent == 1.0 or not math.isfinite(value):
                continue
            end = start + length
            state.forecaster.learn_one((end / 1000.0, value))
            out.extend(self._predict(meta, state, start, length))
        self.forget_idle(int(batch.start_ms[rows].max()), self.settings.detect_forget_after_s * 1000)
        return out

    def _predict(self, meta: SeriesMeta, state: CrossingState, start: int, length: int) -> list[PredictionRecord]:
        lower, upper = self.limits[meta.name]
        horizon = self.settings.detect_forecast_horizon_s
        repeat_ms = self.settings.detect_prediction_repeat_s * 1000
        end = start + length
        out = []
        for limit, direction in ((upper, CrossingDirection.ABOVE), (lower, CrossingDirection.BELOW)):
            if limit is None:
                continue
            crossing = state.forecaster.predict_crossing(limit, horizon)
            if crossing is None or not _towards(crossing, direction):
                continue
            last = state.published_ms.get(limit)
            if last is not None and end - last < repeat_ms:
                continue
            state.published_ms[limit] = end
            out.append(
                PredictionRecord(
                    id=prediction_id(meta.key, limit, start, length),
                    series_name=meta.name,
                    labels=dict(meta.labels),
                    series_key=meta.key,
                    service=service_of(meta.labels),
                    threshold=limit,
                    direction=direction,
                    value=crossing.level,
                    slope_per_s=crossing.slope_per_s,
                    predicted_at=_at(crossing.at_s),
                    earliest_at=_at(crossing.at_s - crossing.eta_s + crossing.earliest_s),
                    horizon_s=horizon,
                    confidence=state.forecaster.confidence,
                    made_at=_at(end / 1000.0),
                )
            )
        return out


def _towards(crossing: CrossingForecast, direction: CrossingDirection) -> bool:
    """Rising through an upper limit or falling through a lower one; not a recovery back through it."""
    return crossing.slope_per_s > 0 if direction == CrossingDirection.ABOVE else crossing.slope_per_s < 0


def install(
    app: faust.App, settings: DetectionServiceSettings, documents: DocumentStore
) -> FeatureStage[PredictionRecord]:
    source = declare(app, Topics.FEATURES, settings.topic_prefix)
    predictions = declare(app, Topics.PREDICTIONS, settings.topic_prefix)

    async def publish(records: list[PredictionRecord]) -> None:
        futures = [await predictions.send(key=r.series_key.encode(), value=r.encode()) for r in records]
        await asyncio.gather(*futures)
        for r in records:
            log.info("prediction", id=r.id, series=r.series_key, threshold=r.threshold, at=r.predicted_at.isoformat())
        # After the topic has them: the API's copy waits for a store that is down, and the checkpoint with it.
        await write_documents(documents, "predictions", records)

    return FeatureStage(
        app,
        "crossing_predictor",
        source,
        Topics.FEATURES.partitions,
        lambda partition: CrossingPartition(partition, settings),
        publish,
        settings.detect_checkpoint_interval_s,
        settings.detect_replay_timeout_s,
    )
