"""Agent: per-series anomaly detection over ``features`` batches, published as ``AnomalyRecord`` to ``anomalies``.

Each ``features`` partition has one :class:`AnomalyPartition`: a :class:`SeriesState`
per series and watched window length (the cascade or the special detectors that fit
the series, see ``series_detectors``). Rows are taken in per series in window order;
a window a series already took in is skipped, so a batch delivered twice changes
nothing and publishes nothing. Operator feedback (the series' sensitivity in the
feedback store) has the last word on whether a finding is published.

Tier 1 of every cascade sees every window, so it does not run series by series: the
partition keeps the tier-1 state of all its cascades in a :class:`RobustBandPanel` and
scores a batch's windows in one numpy pass per round (one window per series per round,
in window order); each series then runs the rest (tiers 2 and 3 where tier 1 flags, the
special detectors, the alert rules) on its own.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import faust
import numpy as np
import structlog
from aiops_common.feedback import FeedbackStore
from aiops_common.schemas import AnomalyRecord, AnomalySeverity, FeatureBatch, SeriesMeta, anomaly_id
from aiops_common.topics import Topics, declare

from aiops_detection.agents.config_updates import ActiveConfig, ConfigBook
from aiops_detection.agents.model_updates import ModelBook
from aiops_detection.agents.partition_state import FeatureStage, SeriesStates
from aiops_detection.detectors.cascade import Severity
from aiops_detection.detectors.robust_band import RobustBandPanel
from aiops_detection.detectors.sensitivity import admits
from aiops_detection.detectors.series_detectors import (
    STATE_FINGERPRINT,
    Finding,
    SeriesState,
    WindowRow,
    new_series_state,
    service_of,
)
from aiops_detection.detectors.trained_models import model_name
from aiops_detection.service_settings import DetectionServiceSettings

__all__ = ["AnomalyPartition", "Detection", "install", "to_record"]

log = structlog.get_logger(__name__)

_SEVERITY = {
    Severity.MINOR: AnomalySeverity.MINOR,
    Severity.MAJOR: AnomalySeverity.MAJOR,
    Severity.CRITICAL: AnomalySeverity.CRITICAL,
}


@dataclass(frozen=True, slots=True)
class Detection:
    """A finding with the series it is about and the model it ran on."""

    series: SeriesMeta
    length_ms: int
    finding: Finding
    model_version: int | None
    """Version of the trained ``cascade-<window>s`` model the series runs on; None: learned online only."""


def to_record(detection: Detection, slack: float, detected_at: datetime) -> AnomalyRecord:
    meta, finding = detection.series, detection.finding
    return AnomalyRecord(
        id=anomaly_id(meta.key, finding.start_ms, detection.length_ms),
        series_name=meta.name,
        labels=dict(meta.labels),
        series_key=meta.key,
        service=service_of(meta.labels),
        window_start=datetime.fromtimestamp(finding.start_ms / 1000, UTC),
        window_end=datetime.fromtimestamp(finding.end_ms / 1000, UTC),
        value=finding.value,
        score=finding.score,
        lower=finding.lower,
        upper=finding.upper,
        slack=slack,
        severity=_SEVERITY[finding.severity],
        detector=finding.detector,
        evidence={k: v for k, v in finding.evidence.items() if math.isfinite(v)},
        model=model_name(detection.length_ms) if detection.model_version is not None else "",
        model_version=detection.model_version,
        detected_at=detected_at,
    )


class AnomalyPartition(SeriesStates[SeriesState]):
    """The detector state of every series of one ``features`` partition.

    The cascades' tier-1 states live in panels (one per tier-1 hyperparameter set), not in
    the cascades: a state's ``cascade.basic`` is put into the panel whenever the state
    arrives (a new series, a restored checkpoint, a trained model swapped in), and is then
    the panel's shared template; it is brought up to date from the panel row for the
    length of a checkpoint's dump (:meth:`dump`).
    """

    state_type = SeriesState
    fingerprint = STATE_FINGERPRINT

    def __init__(
        self, partition: int, settings: DetectionServiceSettings, models: ModelBook, book: ConfigBook | None = None
    ) -> None:
        super().__init__()
        self.partition = partition
        self.settings = settings
        self.models = models
        self.book = book
        """The operators' configuration (``config_updates``); None: the settings alone."""
        self.config: ActiveConfig | None = None if book is None else book.current
        self.lengths = np.asarray(settings.window_lengths_ms, dtype=np.int64)
        self._model_seen: dict[int, int] = {}
        self._awaiting_model: dict[int, set[str]] = {}
        self._panels: dict[str, RobustBandPanel] = {}
        self._tier1: dict[str, tuple[RobustBandPanel, int]] = {}
        """Series id -> the panel and row holding its cascade's tier 1."""

    def process(self, batch: FeatureBatch) -> list[Detection]:
        self._take_config()
        self._adopt_models()
        rows = np.flatnonzero(np.isin(batch.length_ms, self.lengths))
        if rows.size == 0:
            return []
        # Per series in window order: a batch may hold several windows of one series.
        rows = rows[np.lexsort((batch.start_ms[rows], batch.sid[rows]))]
        latency_column = batch.column(self.settings.detect_latency_column)[rows].tolist()
        columns = zip(
            batch.sid[rows].tolist(),
            batch.start_ms[rows].tolist(),
            batch.length_ms[rows].tolist(),
            batch.column("value")[rows].tolist(),
            batch.column("count")[rows].tolist(),
            batch.column("sum")[rows].tolist(),
            latency_column,
            batch.column("absent")[rows].tolist(),
            strict=True,
        )
        windows: list[tuple[SeriesMeta, str, WindowRow]] = []
        rounds: list[list[int]] = []
        taken: dict[str, int] = {}
        for sid, start, length, value, count, total, latency, absent in columns:
            meta = batch.series[sid]
            row = WindowRow(start, length, value, count, total, latency, absent == 1.0)
            ident = f"{meta.key}@{length}"
            if ident not in self.states:
                self.states[ident] = self._new_state(meta, row)
                self._enter(ident)
            turn = taken.get(ident, 0)
            taken[ident] = turn + 1
            if turn == len(rounds):
                rounds.append([])
            rounds[turn].append(len(windows))
            windows.append((meta, ident, row))

        found: list[tuple[int, Detection]] = []
        for members in rounds:
            basics = self._tier1_round([windows[i] for i in members])
            for i, basic in zip(members, basics, strict=True):
                meta, ident, row = windows[i]
                state = self.states[ident]
                was_warm = state.warm
                finding = state.step(row, basic)
                self._changed.add(ident)
                if state.warm and not was_warm:
                    log.info("series warm", series=meta.key, length_ms=row.length_ms, windows=state.seen)
                if finding is not None:
                    found.append((i, Detection(meta, row.length_ms, finding, state.model_version)))
        self._forget_idle(int(batch.start_ms[rows].max()))
        return [detection for _, detection in sorted(found, key=lambda pair: pair[0])]

    def _forget_idle(self, batch_start_ms: int) -> None:
        forgotten = self.forget_idle(batch_start_ms, self.settings.detect_forget_after_s * 1000)
        for ident in forgotten:
            held = self._tier1.pop(ident, None)
            if held is not None:
                held[0].release(held[1])
        if forgotten:
            log.info("idle series forgotten", partition=self.partition, series=len(forgotten), kept=len(self.states))

    # -- tier 1 across series --------------------------------------------------------------------------

    def _tier1_round(self, windows: list[tuple[SeriesMeta, str, WindowRow]]) -> list[tuple[float, float, float] | None]:
        """Tier 1 of one window per series, scored and learned per panel in one pass; None where it does not run."""
        out: list[tuple[float, float, float] | None] = [None] * len(windows)
        members: dict[RobustBandPanel, tuple[list[int], list[int], list[float]]] = {}
        for i, (_, ident, row) in enumerate(windows):
            if self.states[ident].takes_value(row):
                panel, slot = self._tier1[ident]
                positions, slots, values = members.setdefault(panel, ([], [], []))
                positions.append(i)
                slots.append(slot)
                values.append(row.value)
        for panel, (positions, slots, values) in members.items():
            explained = panel.step(np.asarray(slots), np.asarray(values))
            scored = zip(explained.score.tolist(), explained.lower.tolist(), explained.upper.tolist(), strict=True)
            for i, basic in zip(positions, scored, strict=True):
                out[i] = basic
        return out

    def _enter(self, ident: str) -> None:
        """Tune the arriving state to the configuration in use, and move its tier 1 into its panel, which runs it
        from now on."""
        state = self.states[ident]
        if self.config is not None:
            state.retune(self.config.tuning(state.name, state.service))
        cascade = state.cascade
        if cascade is None:
            return
        panel = self._panels.get(repr(cascade.basic))
        if panel is None:
            panel = self._panels[repr(cascade.basic)] = RobustBandPanel(cascade.basic)
        held = self._tier1.get(ident)
        if held is not None and held[0] is panel:
            if cascade.basic is not panel.template:  # the template: the row already is this state's tier 1
                panel.put(held[1], cascade.basic)
        else:
            if held is not None:
                held[0].release(held[1])
            self._tier1[ident] = panel, panel.add(cascade.basic)
        # The panel row is tier 1 from now on. The state keeps the panel's template, one object for every
        # series of the panel, which only says which panel: a detector of its own is 4 KB a series when
        # fresh and grows as its window of changes fills, and nothing reads it until the next dump.
        cascade.basic = panel.template

    def dump(self, ident: str, heard_ms: float | None) -> bytes:
        """The entry with tier 1 as its panel row has it, brought into the cascade for the dump only."""
        held = self._tier1.get(ident)
        cascade = self.states[ident].cascade
        if held is None or cascade is None:
            return super().dump(ident, heard_ms)
        cascade.basic = held[0].take(held[1])
        try:
            return super().dump(ident, heard_ms)
        finally:
            cascade.basic = held[0].template

    def restore(self, states: Mapping[str, bytes]) -> None:
        self._take_config()  # restored states enter tuned to the newest version, whatever they were saved with
        super().restore(states)
        for ident in states:
            if ident in self.states:
                self._enter(ident)

    def _take_config(self) -> None:
        """Take the newest configuration (once per batch); a new version retunes every series held."""
        current = None if self.book is None else self.book.current
        if current is None or current is self.config:
            return
        self.config = current
        retuned = sum(state.retune(current.tuning(state.name, state.service)) for state in self.states.values())
        log.info(
            "series retuned to the detection configuration",
            partition=self.partition,
            version=current.version,
            series=retuned,
        )

    # -- models --------------------------------------------------------------------------------------------

    def _new_state(self, meta: SeriesMeta, row: WindowRow) -> SeriesState:
        trained, version = self.models.trained(row.length_ms, meta.key)
        state = new_series_state(meta.key, meta.name, row.length_ms, self.settings, trained, version, row.start_ms)
        state.service = service_of(meta.labels)
        if state.model_version is not None:
            log.info("series starts from a trained model", series=meta.key, version=version, windows=state.seen)
        elif trained is not None:
            log.info("trained model ends before the series' first window; cold start", series=meta.key)
        else:
            log.info("series cold start", series=meta.key, length_ms=row.length_ms, needs=state.min_history)
        return state

    def _adopt_models(self) -> None:
        """Swap newly trained cascades in, each once it has caught up with its series."""
        for length, loaded in self.models.loaded.items():
            if self._model_seen.get(length) != loaded.version:
                self._model_seen[length] = loaded.version
                self._awaiting_model[length] = {
                    ident
                    for ident, state in self.states.items()
                    if state.length_ms == length
                    and state.key in loaded.series
                    and (state.model_version or 0) < loaded.version
                }
            waiting = self._awaiting_model.get(length, set())
            for ident in list(waiting):
                state = self.states.get(ident)
                if state is None:
                    waiting.discard(ident)
                    continue
                adopted = state.adopt(loaded.series[state.key], loaded.version)
                if adopted is None:
                    continue  # the series has not reached the model's training end yet
                waiting.discard(ident)
                self._changed.add(ident)
                if adopted:
                    self._enter(ident)
                    log.info(
                        "series swapped to trained model", series=state.key, model=loaded.name, version=loaded.version
                    )
                else:
                    log.warning("trained model cannot catch up with the series; kept", series=state.key)


def install(
    app: faust.App,
    settings: DetectionServiceSettings,
    models: ModelBook,
    store: FeedbackStore,
    book: ConfigBook | None = None,
) -> FeatureStage[Detection]:
    source = declare(app, Topics.FEATURES, settings.topic_prefix)
    anomalies = declare(app, Topics.ANOMALIES, settings.topic_prefix)

    async def publish(detections: list[Detection]) -> None:
        sensitivity = await store.sensitivities(d.series.key for d in detections)
        if book is not None:
            sensitivity = book.current.sensitivities(sensitivity)
        now = datetime.now(UTC)
        records = []
        for d in detections:
            s, f = sensitivity[d.series.key], d.finding
            if admits(s, f.score, f.value, f.lower, f.upper, settings.detect_alert_score):
                records.append(to_record(d, s.slack, now))
            else:
                log.info("finding below the series' feedback threshold", series=d.series.key, score=f.score)
        futures = [await anomalies.send(key=r.series_key.encode(), value=r.encode()) for r in records]
        await asyncio.gather(*futures)
        for r in records:
            log.info("anomaly", id=r.id, series=r.series_key, detector=r.detector, score=round(r.score, 3))

    return FeatureStage(
        app,
        "anomaly_detector",
        source,
        Topics.FEATURES.partitions,
        lambda partition: AnomalyPartition(partition, settings, models, book),
        publish,
        settings.detect_checkpoint_interval_s,
        settings.detect_replay_timeout_s,
    )
