"""Which detectors watch a series, and the state the anomaly detector keeps for it between windows.

Every series window passes through the detectors that fit its name:

| series | detectors |
|---|---|
| ``red.error_rate`` | ``ErrorRateSpike`` on (errors, requests) = (``sum``, ``count``) of the window |
| ``red.latency_s`` | ``LatencyDegradation`` on the latency column (``p95``), and the cascade on ``value`` |
| any other | the cascade (tier 1 → 2 → 3) on ``value`` |
| any, with configured limits | ``StaticThreshold`` on ``value`` (no cold start: the operator knows the limits) |
| any | ``SilenceDetector`` on the windows that carry data; scored on ``absent`` rows |

The error-rate series counts its own requests (one event per request, so ``count`` is
the request count of ``red.request_rate`` for the same labels and window): the
minimum-request rule needs no join across series, which may sit on other partitions.

The highest score of a window is its verdict. It raises a finding only when the
series is past its cold start (``min_history`` windows with data; static limits
excepted), the score reaches the alert score, and it beats every score of the
``refractory`` windows before it, so one episode alerts once unless it gets worse.
Those windows are the ones the series reported in (and silent ones that alerted):
the ``absent`` rows between the reports of a slow series do not shorten it.

Seasonality is counted in the series' own reports, not in windows: after
``STEP_WINDOWS`` windows with data the series' reporting step is settled
(:func:`seasonality.reporting_step_ms`), and a series that reports every 5 minutes
into 1-minute windows gets tiers 2 and 3 that look for a day of 288 points, brought
up to date on the windows seen so far.
"""

from __future__ import annotations

import copy
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from aiops_detection.detectors import (
    calibration,
    cascade,
    detector,
    error_rate,
    latency,
    ring,
    robust_band,
    seasonal_forecast,
    seasonality,
    silence,
    static_threshold,
    window_model,
)
from aiops_detection.detectors.calibration import RunningMax
from aiops_detection.detectors.cascade import Cascade, Severity
from aiops_detection.detectors.error_rate import ErrorRateSpike, RequestCounts
from aiops_detection.detectors.fingerprint import code_fingerprint
from aiops_detection.detectors.latency import LatencyDegradation
from aiops_detection.detectors.ring import Ring
from aiops_detection.detectors.robust_band import RobustBandDetector
from aiops_detection.detectors.seasonal_forecast import SeasonalForecastDetector
from aiops_detection.detectors.seasonality import candidate_periods, reporting_step_ms
from aiops_detection.detectors.silence import SilenceDetector
from aiops_detection.detectors.static_threshold import StaticThreshold
from aiops_detection.detectors.window_model import WindowModelDetector
from aiops_detection.service_settings import DetectionServiceSettings
from aiops_detection.settings import DetectionSettings

__all__ = [
    "ERROR_RATE",
    "LATENCY",
    "STATE_FINGERPRINT",
    "STEP_WINDOWS",
    "Finding",
    "SeriesState",
    "TrainedSeries",
    "Tuning",
    "WindowRow",
    "build_cascade",
    "cascade_params",
    "new_series_state",
    "service_of",
    "tuning_of",
]

ERROR_RATE = "red.error_rate"
LATENCY = "red.latency_s"
STEP_WINDOWS = 12
"""Windows with data after which a series' reporting step is settled (fewer when the cold start is shorter)."""

STATE_FINGERPRINT = code_fingerprint(
    calibration,
    cascade,
    detector,
    error_rate,
    latency,
    ring,
    robust_band,
    seasonal_forecast,
    seasonality,
    silence,
    static_threshold,
    window_model,
    sys.modules[__name__],
)
"""Which code pickled a series state or a trained cascade: states and models from other code are not loaded."""


def service_of(labels: Mapping[str, str]) -> str:
    """The service a series belongs to, from the labels OpenTelemetry and Prometheus use for it."""
    return labels.get("service") or labels.get("service_name") or labels.get("job") or ""


def _calibration_window(min_history: int) -> int:
    """Lagging windows that must fill before a tier scores: half the cold start, at most the tiers' default 100."""
    return max(1, min(100, min_history // 2))


def build_cascade(settings: DetectionSettings, length_ms: int, step_ms: int | None = None) -> Cascade:
    """The cascade every series of one window length runs: the worker's and ``aiops train``'s are the same.

    ``step_ms``: how often the series reports (a multiple of ``length_ms``); the
    seasonal periods of tiers 2 and 3 are counted in reports. None: every window.
    """
    periods = candidate_periods((step_ms or length_ms) / 1000.0)
    history = settings.detect_min_history
    warmup = _calibration_window(history)
    return Cascade(
        basic=RobustBandDetector(z_window=warmup, min_history=history),
        agile=SeasonalForecastDetector(periods=periods, residual_window=warmup, min_history=history),
        robust=WindowModelDetector(
            periods=periods,
            seed=settings.detect_seed,
            device=settings.device,
            min_history=history,
            calibration_warmup=warmup,
        ),
        flag=settings.detect_flag_score,
        confirm=settings.detect_confirm_score,
        severities=settings.detect_severities,
    )


def cascade_params(settings: DetectionSettings, length_ms: int) -> dict[str, object]:
    """What must match between a trained model and a worker for the worker to use it."""
    cascade = build_cascade(settings, length_ms)
    return {
        "code": STATE_FINGERPRINT,
        "length_ms": length_ms,
        "basic": repr(cascade.basic),
        "agile": repr(cascade.agile),
        "robust": repr(cascade.robust),
        "flag": cascade.flag,
        "confirm": cascade.confirm,
    }


@dataclass(frozen=True, slots=True)
class Tuning:
    """What an operator may set for a series while it runs: the cascade's gates, the severity levels, and its
    static limits (None: none). Applied to a running series' detectors without losing what they learned."""

    flag: float
    confirm: float
    severities: tuple[float, float, float]
    static: tuple[float | None, float | None] | None


def tuning_of(settings: DetectionSettings, name: str) -> Tuning:
    """A series' tuning from the service's own settings (``AIOPS_DETECT_*``) alone."""
    return Tuning(
        settings.detect_flag_score,
        settings.detect_confirm_score,
        settings.detect_severities,
        settings.detect_static_thresholds.get(name),
    )


@dataclass(slots=True)
class TrainedSeries:
    """A cascade trained on one series' history up to the window ending at ``end_ms``."""

    cascade: Cascade
    end_ms: int
    points: int
    step_ms: int
    """The series' reporting step in its history, which the cascade's seasonal periods are counted in."""


@dataclass(frozen=True, slots=True)
class WindowRow:
    """The numbers of one series window that the detectors read."""

    start_ms: int
    length_ms: int
    value: float
    count: float
    sum: float
    latency: float
    absent: bool

    @property
    def end_ms(self) -> int:
        return self.start_ms + self.length_ms


@dataclass(frozen=True, slots=True)
class Finding:
    """A window that alerts, before operator feedback gets its say."""

    start_ms: int
    end_ms: int
    detector: str
    score: float
    severity: Severity
    value: float | None
    lower: float | None
    upper: float | None
    evidence: dict[str, float]


@dataclass(slots=True)
class _Candidate:
    detector: str
    score: float
    value: float | None
    lower: float | None = None
    upper: float | None = None


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


@dataclass(slots=True)
class SeriesState:
    """Everything remembered about one series at one window length; pickled whole into checkpoints.

    In a running partition the cascade's tier 1 is held in the partition's
    ``RobustBandPanel`` and ``cascade.basic`` is only brought up to date for checkpoints.
    """

    key: str
    length_ms: int
    min_history: int
    alert_score: float
    severities: tuple[float, float, float]
    silence: SilenceDetector
    recent_scores: RunningMax
    recent_ends: Ring
    """``end_ms`` (int64) of the latest windows with data, to bring a newly trained model up to date."""
    recent_values: Ring
    """Their values (float64), slot for slot: two arrays, 16 bytes a window (``ring``)."""
    cascade: Cascade | None = None
    step_ms: int | None = None
    """How often the series reports (a multiple of ``length_ms``); None until settled."""
    error_rate: ErrorRateSpike | None = None
    latency: LatencyDegradation | None = None
    static: StaticThreshold | None = None
    last_start_ms: int = -1
    """Start of the latest window taken in: a window starting at or before it was seen (re-delivery)."""
    seen: int = 0
    """Windows with data taken in; the series is cold while this is below ``min_history``."""
    model_version: int | None = None
    duplicates: int = 0
    name: str = ""
    service: str = ""
    """The series' metric name and service (``service_of``), which operator configuration is scoped by."""

    @property
    def warm(self) -> bool:
        return self.seen >= self.min_history

    def retune(self, tuning: Tuning) -> bool:
        """Apply ``tuning``; True when it changed anything. Learned state is kept: a static detector learns
        nothing, and the cascade's gates and severity levels are read on each point, never learned."""
        changed = False
        cascade = self.cascade
        if cascade is not None and (cascade.flag, cascade.confirm, cascade.severities) != (
            tuning.flag,
            tuning.confirm,
            tuning.severities,
        ):
            cascade.flag, cascade.confirm, cascade.severities = tuning.flag, tuning.confirm, tuning.severities
            changed = True
        if self.severities != tuning.severities:
            self.severities = tuning.severities
            changed = True
        limits = None if self.static is None else (self.static.lower, self.static.upper)
        if limits != tuning.static:
            self.static = None if tuning.static is None else StaticThreshold(*tuning.static)
            changed = True
        return changed

    def takes_value(self, row: WindowRow) -> bool:
        """Whether :meth:`step` feeds ``row``'s value to the cascade (tier 1 included)."""
        return (
            self.cascade is not None
            and row.start_ms > self.last_start_ms
            and not row.absent
            and math.isfinite(row.value)
        )

    def step(self, row: WindowRow, basic: tuple[float, float, float] | None = None) -> Finding | None:
        """Score one window against the history, then learn it; a finding when it alerts.

        ``basic``: tier 1's score and expected band ``(score, lower, upper)`` of the row's
        value, when the cascade's tier 1 runs outside it (a ``RobustBandPanel`` scored and
        learned the value, for every row for which :meth:`takes_value` holds). None: the
        cascade runs its own tier 1.
        """
        if row.start_ms <= self.last_start_ms:
            self.duplicates += 1
            return None
        self.last_start_ms = row.start_ms
        evidence: dict[str, float] = {}
        candidates = self._silent(row, evidence) if row.absent else self._present(row, evidence, basic)
        best = max(candidates, key=lambda c: c.score, default=None)
        score = best.score if best is not None else 0.0
        previous = self.recent_scores.maximum
        if not row.absent or score >= self.alert_score:
            self.recent_scores.push(score)
        if best is None or score < self.alert_score:
            return None
        if best.detector != "static" and not self.warm:
            return None
        if previous is not None and score <= previous:
            return None
        severity = Severity(max(1, int(np.searchsorted(np.asarray(self.severities), score, side="right"))))
        return Finding(
            row.start_ms, row.end_ms, best.detector, score, severity, best.value, best.lower, best.upper, evidence
        )

    def _silent(self, row: WindowRow, evidence: dict[str, float]) -> list[_Candidate]:
        score = self.silence.score_one(row.end_ms / 1000.0)
        evidence["silence"] = score
        typical = self.silence.typical_gap
        if math.isfinite(typical):
            evidence["typical_gap_s"] = typical
        return [_Candidate("silence", score, None)]

    def _present(
        self, row: WindowRow, evidence: dict[str, float], basic: tuple[float, float, float] | None
    ) -> list[_Candidate]:
        self.silence.learn_one(row.end_ms / 1000.0)
        out: list[_Candidate] = []
        value = row.value
        has_value = math.isfinite(value)
        if self.static is not None and has_value:
            score = self.static.score_one(value)
            evidence["static"] = score
            out.append(_Candidate("static", score, value, self.static.lower, self.static.upper))
        if self.cascade is not None and has_value:
            if basic is None:
                verdict = self.cascade.verdict_one(value)
                self.cascade.learn_one(value)
            else:
                verdict = self.cascade.verdict_given_basic(value, *basic)
                self.cascade.learn_deeper_one(value)
            evidence.update(verdict.evidence)
            out.append(_Candidate("cascade", verdict.score, value, _finite(verdict.lower), _finite(verdict.upper)))
        if self.error_rate is not None and math.isfinite(row.count) and math.isfinite(row.sum):
            detector = self.error_rate
            counts = RequestCounts(errors=row.sum, requests=row.count)
            baseline = detector.baseline_rate
            if math.isfinite(baseline):
                baseline = max(baseline, detector.rate_floor)
            score = detector.score_one(counts)
            detector.learn_one(counts)
            evidence["error_rate"] = score
            if math.isfinite(baseline):
                evidence["baseline_error_rate"] = baseline
            rate = row.sum / row.count if row.count > 0 else None
            out.append(_Candidate("error_rate", score, rate, 0.0, _finite(baseline)))
        if self.latency is not None and math.isfinite(row.latency):
            detector_l = self.latency
            ratio = detector_l.ratio(row.latency)
            score = detector_l.score_one(row.latency)
            detector_l.learn_one(row.latency)
            evidence["latency"] = score
            if math.isfinite(ratio):
                evidence["latency_ratio"] = ratio
            out.append(_Candidate("latency", score, row.latency))
        if has_value:
            self.recent_ends.append(row.end_ms)
            self.recent_values.append(value)
            self.seen += 1
            if self.step_ms is None and self.seen >= min(STEP_WINDOWS, max(2, self.min_history)):
                self._settle_step()
        return out

    def _settle_step(self) -> None:
        """Count tiers 2 and 3's seasons in the series' own reports, replaying what they learned so far."""
        self.step_ms = reporting_step_ms(self.recent_ends.array(), self.length_ms)
        cascade = self.cascade
        if cascade is None or self.step_ms == self.length_ms:
            return
        periods = candidate_periods(self.step_ms / 1000.0)
        cascade.agile = type(cascade.agile)(**{**cascade.agile.get_params(), "periods": periods})
        cascade.robust = type(cascade.robust)(**{**cascade.robust.get_params(), "periods": periods})
        for value in self.recent_values.tolist():
            cascade.learn_deeper_one(value)

    def adopt(self, trained: TrainedSeries, version: int) -> bool | None:
        """Run on a trained cascade from now on: True when swapped in, None to try again later, False never.

        The trained cascade learned the history up to ``trained.end_ms``; the windows
        after that are fed to it from :attr:`recent` first, so the swap loses nothing.
        Until this series has reached ``trained.end_ms`` it is too early to tell.
        """
        if self.cascade is None:
            return False
        last_end = self.last_start_ms + self.length_ms
        if last_end < trained.end_ms:
            return None
        ends = self.recent_ends.array()
        newer = ends > trained.end_ms
        newer_values = self.recent_values.array()[newer].tolist()
        if last_end > trained.end_ms and (not newer_values or int(ends[newer][0]) > trained.end_ms + self.length_ms):
            return False  # a hole between the training history and what this worker still remembers
        cascade = copy.deepcopy(trained.cascade)
        for v in newer_values:
            cascade.learn_one(v)
        self.cascade = cascade
        self.step_ms = trained.step_ms
        self.model_version = version
        self.seen = max(self.seen, trained.points + len(newer_values))
        return True


def new_series_state(
    key: str,
    name: str,
    length_ms: int,
    settings: DetectionServiceSettings,
    trained: TrainedSeries | None = None,
    version: int | None = None,
    first_start_ms: int | None = None,
    service: str = "",
    tuning: Tuning | None = None,
) -> SeriesState:
    """A fresh state for a series first seen; warm from ``trained`` when it ends where this series begins.

    ``tuning``: the operator's configuration for it; None: the service's settings.
    """
    limits = settings.detect_static_thresholds.get(name)
    catchup = max(STEP_WINDOWS, settings.detect_model_catchup_points)
    state = SeriesState(
        key=key,
        length_ms=length_ms,
        min_history=settings.detect_min_history,
        alert_score=settings.detect_alert_score,
        severities=settings.detect_severities,
        silence=SilenceDetector(tolerance=settings.detect_silence_tolerance),
        recent_scores=RunningMax(settings.detect_refractory_points),
        recent_ends=Ring(catchup, np.int64),
        recent_values=Ring(catchup),
        static=StaticThreshold(*limits) if limits is not None else None,
        name=name,
        service=service,
    )
    if name == ERROR_RATE:
        state.error_rate = ErrorRateSpike(min_requests=settings.detect_error_min_requests)
        if tuning is not None:
            state.retune(tuning)
        return state
    if name == LATENCY:
        state.latency = LatencyDegradation(tolerance=settings.detect_latency_tolerance)
    # A model whose history ends before this series' first window leaves a hole it cannot fill: cold start.
    if trained is not None and first_start_ms is not None and first_start_ms <= trained.end_ms:
        state.cascade = copy.deepcopy(trained.cascade)
        state.step_ms = trained.step_ms
        state.seen = trained.points
        state.model_version = version
        # Windows the model already learned are skipped like re-deliveries.
        state.last_start_ms = trained.end_ms - length_ms
    else:
        state.cascade = build_cascade(settings, length_ms)
    if tuning is not None:
        state.retune(tuning)
    return state
