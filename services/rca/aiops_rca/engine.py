"""The engine: one case in, causes ranked by P(cause | evidence) out, each with its evidence.

Flow 3 of the design: the affected subgraph and its series (the case) -> the baseline and
the window around onset -> when and how far each series moved (robust scores, Bayesian
change point) -> Granger tests along the call edges -> evidence from changes, traces,
alerts and operator feedback -> P(cause | evidence) over the services (``ranking.bayes``)
-> rules for known failure modes, which put their service first when they fire.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
from aiops_common.schemas import CauseKind, Evidence, EvidenceKind, MetricFinding, RankedCause, RcaStatus

from aiops_rca.case import Case, SeriesKey
from aiops_rca.evidence import granger
from aiops_rca.evidence.change_points import (
    MIN_BASELINE,
    ScoredSeries,
    anomaly_llr,
    baseline_of,
    change_point,
    first_sustained,
    score_window,
)
from aiops_rca.evidence.deployments import changes_before
from aiops_rca.evidence.kinds import kind_of
from aiops_rca.evidence.regression import residuals
from aiops_rca.evidence.rules import RuleFire, crash_loop, deployment, saturation
from aiops_rca.evidence.traces import origin_shares
from aiops_rca.ranking.bayes import Hypothesis, rank

__all__ = ["Analysis", "RcaConfig", "analyze"]

_CHANGE_LLR = math.log(4.0)
"""A change on a service before onset: four times as likely to be the origin (if it moved, more below)."""
_RULE_LLR = math.log(50.0)
_GRANGER_LLR = 0.7
_GRANGER_DOMINANCE = 1e-3
_RULE_MOVED_LLR = 1.0
_SIGNALLED_LLR = 1.0
"""The least a service with a failure signal of the incident counts as having moved."""
"""How clearly (log likelihood ratio of its own departure) a service must have moved for a rule to fire."""
_EARLIER_LLR = -0.7
"""Per upstream service that moved clearly before the candidate did: it should not have."""
_SIGNAL_LLR = 0.3
_DOWNSTREAM_KINDS = frozenset({CauseKind.TRAFFIC})
"""Kinds of series that flow from caller to callee, not back."""
_OWN_CAP = 15.0
"""The most a service's own unexplained departure counts: a fault is more than one huge number."""
_CO_MOVEMENT_LLR = 3.0
"""Per unit of correlation between a candidate's departure and the symptom's over the window."""
_SERIES_SHOWN = 5


@dataclass(frozen=True, slots=True)
class RcaConfig:
    """How the engine judges a case (the agent's settings fill it; the defaults suit 10 s series)."""

    anomaly_z: float = 5.0
    """Robust z a series must reach (two points in a row) after onset to count as moved."""
    target_z: float = 2.5
    """Robust z the named target (an SLO series) must reach two points in a row, or there is nothing to explain."""
    max_lag: int = 6
    """Most lags a Granger test considers (chosen by AIC up to it)."""
    granger_alpha: float = 0.05
    """False discovery rate of the Granger tests of one case (Benjamini-Hochberg)."""
    change_window_s: float = 1800.0
    """A change this long before onset (or up to a minute after) is linked to it."""
    deployment_rule_s: float = 900.0
    """The deployment rule fires for a change at most this long before its service moved."""
    pre_onset_s: float = 300.0
    """The window analysed starts this long before the given onset: a cause moves before the alerts say so.
    With less history than that before onset, the baseline is the first few points there are (``_split``)."""
    min_change_bayes_factor: float = 10.0
    """Log Bayes factor of a change point from which a series counts when the onset is found from the series."""
    traffic_weight: float = 0.3
    """How much a service's traffic moving counts as it moving (see ``_weighted``)."""
    other_kind_weight: float = 0.0
    """With a named target, how much series of another kind than the target's count (see ``_service_llr``)."""
    regressors_per_service: int = 3
    """Series of each callee (its most moved) that a service's series are fitted on."""
    top: int = 10
    """Most causes returned."""


@dataclass(slots=True)
class Analysis:
    causes: list[RankedCause]
    status: RcaStatus
    onset_ms: int | None
    summary: str
    missing: list[str] = field(default_factory=list)


def analyze(case: Case, config: RcaConfig | None = None) -> Analysis:
    """Rank the probable root causes of ``case``; never raises on data it cannot use (it says so instead)."""
    config = config or RcaConfig()
    missing = list(case.missing)
    ts = np.asarray(case.ts_ms, dtype=np.int64)
    split = _split(case, ts, config)
    if split is None:
        return Analysis([], RcaStatus.NO_ANOMALY, None, "no series moved: nothing to rank", missing)
    base, window, onset_ms = split
    scored = _score(case, ts, base, window, config)
    if case.target is not None:
        target = scored.get(case.target)
        if target is None:
            missing.append(f"target: no data for {case.target}")
        elif abs(target.score.score) < config.target_z:
            return Analysis(
                [],
                RcaStatus.NO_ANOMALY,
                onset_ms,
                f"{case.target} did not move (robust z {target.score.score:.1f}): nothing to rank",
                missing,
            )
        else:
            # Where the target's departure began: series are judged from a step before it, against
            # their level just before it when the window has one.
            begin = _target_start(target, config.target_z)
            if begin is not None and begin > 1:
                scored = _score(case, ts, base, window, config, start=begin - 1)
                if onset_ms is None:
                    onset_ms = int(ts[window][begin])
    by_service: dict[str, list[ScoredSeries]] = {}
    for s in scored.values():
        by_service.setdefault(s.key.service, []).append(s)
    for series in by_service.values():
        series.sort(key=lambda s: -abs(s.score.score))
    llr = _service_llr(by_service, case.target, config)
    symptoms = _symptoms(case)
    if case.target is None:
        # An alert or anomaly of the incident says its service moved, even where its series do not show it
        # (they are other series, or the TSDB could not be read).
        signalled = {s.service for s in case.signals}
        for service in symptoms:
            if service in signalled:
                llr[service] = max(llr.get(service, _SIGNALLED_LLR), _SIGNALLED_LLR)
    onsets = {
        service: min((s.onset_ms for s in series if s.onset_ms is not None and s.llr > 0), default=None)
        for service, series in by_service.items()
    }
    services = case.all_services()
    callers: dict[str, list[str]] = {}
    callees: dict[str, list[str]] = {}
    for caller, callee in case.edges:
        if caller != callee:
            callers.setdefault(callee, []).append(caller)
            callees.setdefault(caller, []).append(callee)
    step_ms = int(np.median(np.diff(ts))) if ts.size > 1 else 0
    own = _own_llr(case, by_service, callees, base, window, config, llr)

    extra: dict[str, list[Evidence]] = {s: [] for s in services}
    _onset_order(services, callers, llr, onsets, step_ms, extra)
    if case.baseline_end_ms is None:
        _granger(case, by_service, llr, ts, window, config, extra)
    else:
        missing_granger = "granger: the normal period is apart from the incident, so no contiguous series to test"
        if missing_granger not in missing:
            missing.append(missing_granger)
    fires = _changes_and_rules(
        case, services, symptoms, callers, callees, by_service, llr, own, onsets, onset_ms, config, extra
    )
    _traces_signals_feedback(case, by_service, llr, extra)

    moved = {s for s, value in llr.items() if value > 0}
    evidenced = {s for s in services if any(e.weight > 0 for e in extra.get(s, ()) if e.kind is not EvidenceKind.ONSET)}
    if not moved and not evidenced:
        return Analysis([], RcaStatus.NO_ANOMALY, onset_ms, "no service moved beyond its baseline", missing)
    # Ranked: every service that moved or has evidence, every one without series (a managed datastore may be
    # the origin its callers point to), and the ``top`` that came closest to moving by themselves (a weak
    # fault that callers amplify may still be the likeliest origin).
    unobserved = [s for s in services if s not in llr]
    weak = sorted((s for s in llr if s not in moved and s not in evidenced), key=lambda s: -own.get(s, llr[s]))
    candidates = [s for s in services if s in moved or s in evidenced or s in unobserved]
    candidates += weak[: config.top]
    if case.target is not None:
        symptom_series = [scored[case.target]] if case.target in scored else []
    else:
        symptom_series = [
            failing[0]
            for s in symptoms
            if llr.get(s, 0) > 0
            and (failing := [x for x in by_service.get(s, []) if kind_of(x.key.metric) is not CauseKind.TRAFFIC])
        ]
    _co_movement(by_service, symptom_series, llr, extra)
    target_service = case.target.service if case.target is not None else None
    hypotheses = rank(candidates, callers, llr, extra, symptoms, own=own, target=target_service)
    hypotheses = _rules_first(hypotheses, fires)
    causes = [
        _cause(h, by_service.get(h.service, []), fires.get(h.service), own.get(h.service, llr.get(h.service)))
        for h in hypotheses[: config.top]
    ]
    status = RcaStatus.DEGRADED if missing and case.missing else RcaStatus.OK
    return Analysis(causes, status, onset_ms, _summary(causes, onset_ms), missing)


def _split(
    case: Case, ts: npt.NDArray[np.int64], config: RcaConfig
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_], int | None] | None:
    """The baseline and window masks and the onset: given, or found from the series' change points."""
    if ts.size == 0:
        return None
    if case.baseline_end_ms is not None:
        base = ts <= case.baseline_end_ms
        return base, ~base, None
    onset_ms = case.onset_ms
    if onset_ms is None:
        onset_ms = _find_onset(case, ts, config)
        if onset_ms is None:
            return None
        start = onset_ms
    else:
        start = onset_ms - int(config.pre_onset_s * 1000)
        before_onset = int(np.count_nonzero(ts < onset_ms))
        if np.count_nonzero(ts < start) < MIN_BASELINE and before_onset > 0:
            # Less history than pre_onset_s: the first few points are the baseline rather than none at all (every
            # series unscored, every cause of kind "unknown"); the window still starts before onset when it can.
            start = int(ts[min(MIN_BASELINE, before_onset, ts.size - 1)])
    base = ts < start
    return base, ts >= start, onset_ms


def _target_start(target: ScoredSeries, threshold: float) -> int | None:
    """Index in the window where the target's departure (two points in a row beyond ``threshold``) began."""
    z = (target.window - target.score.baseline.median) / target.score.baseline.spread
    return first_sustained(z, threshold)


def _find_onset(case: Case, ts: npt.NDArray[np.int64], config: RcaConfig) -> int | None:
    """The earliest strong change point among the series whose change is at least half as strong as the strongest."""
    points = []
    for values in case.series.values():
        cp = change_point(values)
        if cp is not None and cp.log_bayes_factor >= config.min_change_bayes_factor:
            points.append(cp)
    if not points:
        return None
    strongest = max(cp.log_bayes_factor for cp in points)
    return int(ts[min(cp.index for cp in points if cp.log_bayes_factor >= strongest / 2)])


def _score(
    case: Case,
    ts: npt.NDArray[np.int64],
    base: npt.NDArray[np.bool_],
    window: npt.NDArray[np.bool_],
    config: RcaConfig,
    start: int = 0,
) -> dict[SeriesKey, ScoredSeries]:
    window_ts = ts[window]
    scored = {}
    for key, values in case.series.items():
        values = np.asarray(values, dtype=np.float64)
        if values.shape != ts.shape:
            continue
        baseline = baseline_of(values[base])
        if baseline is None and case.onset_ms is not None and case.baseline_end_ms is None:
            # A series that began after the baseline (a new pod, a short history): its first few points before onset.
            early = np.flatnonzero(np.isfinite(values) & (ts < case.onset_ms))[:MIN_BASELINE]
            baseline = baseline_of(values[early])
        if baseline is None:
            continue
        in_window = values[window]
        score = score_window(in_window, baseline, config.anomaly_z, start)
        if score is None:
            continue
        onset_ms = int(window_ts[score.onset]) if score.onset is not None else None
        if onset_ms is not None:
            onset_ms = _change_onset(values, base, window, ts, onset_ms, config)
        scored[key] = ScoredSeries(
            key, in_window, score, anomaly_llr(score.score, config.anomaly_z, baseline.constant), onset_ms
        )
    return scored


def _change_onset(
    values: npt.NDArray[np.float64],
    base: npt.NDArray[np.bool_],
    window: npt.NDArray[np.bool_],
    ts: npt.NDArray[np.int64],
    crossed_ms: int,
    config: RcaConfig,
) -> int:
    """When a series that crossed its threshold at ``crossed_ms`` began to change: its Bayesian change point
    over the window and as much baseline before it, when that is strong and no later than the crossing (a
    slow climb crosses the threshold well after it began)."""
    where = np.flatnonzero(window)
    if where.size < 3:
        return crossed_ms
    lead = max(int(where[0]) - where.size, int(np.flatnonzero(base)[0]) if base.any() else int(where[0]))
    region = slice(lead, int(where[-1]) + 1)
    cp = change_point(values[region])
    if cp is None or cp.log_bayes_factor < config.min_change_bayes_factor:
        return crossed_ms
    at = int(ts[region][cp.index])
    return at if at <= crossed_ms else crossed_ms


def _service_llr(
    by_service: dict[str, list[ScoredSeries]], target: SeriesKey | None, config: RcaConfig
) -> dict[str, float]:
    """Per service, the log likelihood ratio that it moved: its most moved series'.

    With a named target, only series of the target's kind (latency, errors, ...) speak for a service at
    full weight: a latency SLO is explained by latency along the calls; other kinds count
    ``config.other_kind_weight`` as much.
    """
    out = {}
    for service, series in by_service.items():
        out[service] = max(_weighted(s.llr, s.key, target, config) for s in series)
    return out


def _weighted(value: float, key: SeriesKey, target: SeriesKey | None, config: RcaConfig) -> float:
    """A series' log likelihood ratio as evidence about its service: traffic, which moves with the callers'
    load rather than with a fault of the service, counts ``config.traffic_weight``; with a named target,
    series of another kind count ``config.other_kind_weight``."""
    if value <= 0:
        return value
    kind = kind_of(key.metric)
    if target is not None and kind is not kind_of(target.metric):
        return value * config.other_kind_weight
    if kind is CauseKind.TRAFFIC:
        return value * config.traffic_weight
    return value


def _own_llr(
    case: Case,
    by_service: dict[str, list[ScoredSeries]],
    callees: dict[str, list[str]],
    base: npt.NDArray[np.bool_],
    window: npt.NDArray[np.bool_],
    config: RcaConfig,
    moved: dict[str, float],
) -> dict[str, float]:
    """Per service, the log likelihood ratio that it moved by itself: its series' departure that a fit on the
    series of the services it calls does not explain (CIRCA's regression hypothesis test)."""
    out: dict[str, float] = {}
    for service, series in by_service.items():
        # Only what flows up the calls can explain a caller: its callees' latency, errors, saturation. Their
        # traffic flows down (the caller drives it), so it would "explain" the caller's own fault backwards.
        regressors = [
            case.series[s.key]
            for callee in callees.get(service, ())
            if callee != service
            for s in [x for x in by_service.get(callee, []) if kind_of(x.key.metric) not in _DOWNSTREAM_KINDS][
                : config.regressors_per_service
            ]
        ]
        best = -math.inf
        for s in series:
            y = case.series[s.key]
            explainable = regressors and kind_of(s.key.metric) not in _DOWNSTREAM_KINDS
            rest = residuals(y, regressors, base) if explainable else None
            value = anomaly_llr(s.score.score, config.anomaly_z, s.score.baseline.constant, _OWN_CAP)
            if rest is not None:
                baseline = baseline_of(rest[base])
                score = score_window(rest[window], baseline, config.anomaly_z) if baseline is not None else None
                if score is not None and baseline is not None:
                    value = min(value, anomaly_llr(score.score, config.anomaly_z, baseline.constant, _OWN_CAP))
            best = max(best, _weighted(value, s.key, case.target, config))
        out[service] = best
    return out


def _departure(s: ScoredSeries) -> npt.NDArray[np.float64]:
    return np.abs((s.window - s.score.baseline.median) / s.score.baseline.spread)


def _co_movement(
    by_service: dict[str, list[ScoredSeries]],
    symptom_series: Sequence[ScoredSeries],
    llr: dict[str, float],
    extra: dict[str, list[Evidence]],
) -> None:
    """For a service that moved: how closely its departure rose and fell with a symptom's over the window.

    A fault's origin and its symptom move together; a service that was off all along (a shifted
    baseline, an older condition) or that spiked at another time does not.
    """
    profiles = [(s, _departure(s)) for s in symptom_series]
    for service, series in by_service.items():
        if llr.get(service, 0) <= 0:
            continue
        best: tuple[float, ScoredSeries, ScoredSeries] | None = None
        for s in series:
            if s.llr <= 0 or kind_of(s.key.metric) is CauseKind.TRAFFIC:
                continue  # traffic moves with the callers' load, whatever the fault
            mine = _departure(s)
            for symptom, theirs in profiles:
                if symptom.key.service == service:
                    continue
                r = _pearson(mine, theirs)
                if r is not None and (best is None or r > best[0]):
                    best = (r, s, symptom)
        if best is None:
            continue
        r, s, symptom = best
        extra[service].append(
            Evidence(
                kind=EvidenceKind.CO_MOVEMENT,
                text=f"{s.key.metric} rose and fell with {symptom.key} (r = {r:.2f})",
                weight=_CO_MOVEMENT_LLR * r,
                series=s.key.metric,
                effect=str(symptom.key),
                magnitude=r,
            )
        )


def _pearson(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> float | None:
    both = np.isfinite(a) & np.isfinite(b)
    if int(both.sum()) < 3:
        return None
    x, y = a[both], b[both]
    x, y = x - x.mean(), y - y.mean()
    norm = float(np.sqrt(np.dot(x, x) * np.dot(y, y)))
    return float(np.dot(x, y) / norm) if norm > 0 else None


def _onset_order(
    services: Sequence[str],
    callers: dict[str, list[str]],
    llr: dict[str, float],
    onsets: dict[str, int | None],
    step_ms: int,
    extra: dict[str, list[Evidence]],
) -> None:
    """Against a service: callers of it that moved clearly (more than a step) before it did."""
    for service in services:
        own = onsets.get(service)
        if own is None:
            continue
        earlier = [
            c for c in callers.get(service, ()) if (t := onsets.get(c)) is not None and t < own - step_ms and llr[c] > 0
        ]
        if earlier:
            first = min(earlier, key=lambda c: onsets[c] or 0)
            gap_s = (own - (onsets[first] or own)) / 1000
            extra[service].append(
                Evidence(
                    kind=EvidenceKind.ONSET,
                    text=f"{first}, which calls it, moved {gap_s:.0f} s before it did",
                    weight=_EARLIER_LLR * len(earlier),
                    cause=first,
                    effect=service,
                    count=len(earlier),
                )
            )


def _granger(
    case: Case,
    by_service: dict[str, list[ScoredSeries]],
    llr: dict[str, float],
    ts: npt.NDArray[np.int64],
    window: npt.NDArray[np.bool_],
    config: RcaConfig,
    extra: dict[str, list[Evidence]],
) -> None:
    """Granger tests both ways along each call edge whose two ends moved, on each end's most moved series."""
    pairs = []
    edges = []
    for caller, callee in case.edges:
        if llr.get(caller, 0) <= 0 or llr.get(callee, 0) <= 0 or caller == callee:
            continue
        if not by_service.get(caller) or not by_service.get(callee):
            continue  # moved by its alerts alone: no series to test
        x = case.series[by_service[callee][0].key]
        y = case.series[by_service[caller][0].key]
        a, b = str(by_service[callee][0].key), str(by_service[caller][0].key)
        pairs += [(a, b, x, y), (b, a, y, x)]
        edges.append((caller, callee, a, b))
    if not pairs:
        return
    tests = {
        (t.cause, t.effect): t for t in granger.test_pairs(pairs, max_lag=config.max_lag, alpha=config.granger_alpha)
    }
    for caller, callee, a, b in edges:
        forward, backward = tests.get((a, b)), tests.get((b, a))
        direction = granger.direction([t for t in (forward, backward) if t is not None], a, b)
        if direction == 0 and forward is not None and backward is not None and forward.significant:
            # Both ways significant: a feedback loop, or one way far stronger. Only the far stronger counts.
            if forward.p_value < backward.p_value * _GRANGER_DOMINANCE:
                direction = 1
            elif backward.p_value < forward.p_value * _GRANGER_DOMINANCE:
                direction = -1
        if direction > 0 and forward is not None:
            # The callee's series drives the caller's: the fault flows the way calls make it flow.
            extra[callee].append(_granger_evidence(forward, _GRANGER_LLR, f"{callee} -> {caller}"))
        elif direction < 0 and backward is not None:
            # The caller drives its callee (a surge of calls): the caller is the likelier origin.
            extra[caller].append(_granger_evidence(backward, _GRANGER_LLR, f"{caller} -> {callee}"))


def _granger_evidence(test: granger.GrangerTest, weight: float, edge: str) -> Evidence:
    return Evidence(
        kind=EvidenceKind.GRANGER,
        text=f"Granger: {test.cause} leads {test.effect} by {test.lag} step(s) (q = {test.q_value:.3g}, {edge})",
        weight=weight,
        cause=test.cause,
        effect=test.effect,
        series=test.cause,
        lag=test.lag,
        p_value=test.p_value,
        q_value=test.q_value,
    )


def _changes_and_rules(
    case: Case,
    services: Sequence[str],
    symptoms: Sequence[str],
    callers: dict[str, list[str]],
    callees: dict[str, list[str]],
    by_service: dict[str, list[ScoredSeries]],
    llr: dict[str, float],
    own: dict[str, float],
    onsets: dict[str, int | None],
    onset_ms: int | None,
    config: RcaConfig,
    extra: dict[str, list[Evidence]],
) -> dict[str, RuleFire]:
    fires: dict[str, RuleFire] = {}
    for service in services:
        series = by_service.get(service, [])
        moved = llr.get(service, 0.0) > 0
        # A rule is certain only about a service that clearly moved by itself, not one its load or its
        # dependencies moved a little.
        clearly = own.get(service, llr.get(service, 0.0)) >= _RULE_MOVED_LLR
        own_onset = onsets.get(service) or onset_ms
        linked = changes_before(case.changes, service, own_onset, config.change_window_s) if own_onset else []
        for change in linked:
            weight = _CHANGE_LLR if moved else _CHANGE_LLR / 4
            extra[service].append(
                Evidence(
                    kind=EvidenceKind.CHANGE,
                    text=change.text,
                    weight=weight,
                    change_id=change.change.id,
                    version=change.change.version,
                    before_onset_s=change.before_onset_s,
                )
            )
        first = _dependency_moved_first(service, callees, llr, onsets)
        fire = None
        if _explains_any(service, symptoms, callers):
            load_surged = any(
                kind_of(s.key.metric) is CauseKind.TRAFFIC and s.score.score >= config.anomaly_z for s in series
            )
            fire = (
                crash_loop(service, series)
                # A resource saturated by a surge of calls is the callers' load, not this service's fault.
                or (None if load_surged else saturation(service, series, config.anomaly_z))
                or deployment(service, linked, clearly, first, config.deployment_rule_s)
            )
        if fire is not None:
            fires[service] = fire
            extra[service].append(Evidence(kind=EvidenceKind.RULE, text=fire.text, weight=_RULE_LLR, rule=fire.rule))
    return fires


def _symptoms(case: Case) -> list[str]:
    """What the ranking must explain: the named target's service, or the services of the incident's failure
    signals. A signal on traffic alone (a request rate that moved) is load the callers sent, not a failure."""
    if case.target is not None:
        return [case.target.service]
    failing = {s.service for s in case.signals if s.service and kind_of(s.name) is not CauseKind.TRAFFIC}
    if not failing:
        failing = {s.service for s in case.signals if s.service} | set(case.incident_services)
    return sorted(failing)


def _explains_any(service: str, symptoms: Sequence[str], callers: dict[str, list[str]]) -> bool:
    """Whether ``service`` is one of the symptoms or calls up to one of them (directly or not)."""
    if not symptoms or service in symptoms:
        return True
    seen, stack = {service}, [service]
    while stack:
        for caller in callers.get(stack.pop(), ()):
            if caller in symptoms:
                return True
            if caller not in seen:
                seen.add(caller)
                stack.append(caller)
    return False


def _dependency_moved_first(
    service: str, callees: dict[str, list[str]], llr: dict[str, float], onsets: dict[str, int | None]
) -> str | None:
    """A service it depends on (directly or not) that moved no later than it did, if any."""
    own = onsets.get(service)
    seen, stack = {service}, list(callees.get(service, ()))
    while stack:
        callee = stack.pop()
        if callee in seen:
            continue
        seen.add(callee)
        t = onsets.get(callee)
        if llr.get(callee, 0) > 0 and t is not None and (own is None or t <= own):
            return callee
        stack.extend(callees.get(callee, ()))
    return None


def _traces_signals_feedback(
    case: Case, by_service: dict[str, list[ScoredSeries]], llr: dict[str, float], extra: dict[str, list[Evidence]]
) -> None:
    for service, share in origin_shares(case.traces).items():
        extra.setdefault(service, []).append(
            Evidence(
                kind=EvidenceKind.SPAN,
                text=f"{share.origin.count} failing trace(s) ({share.share:.0%}) first failed here"
                + (f", e.g. span {share.origin.span!r} of trace {share.origin.trace_id}" if share.origin.span else ""),
                weight=math.log(1 + 4 * share.share),
                count=share.origin.count,
                trace_id=share.origin.trace_id,
                span=share.origin.span,
            )
        )
    signals: dict[str, list[str]] = {}
    for signal in sorted(case.signals, key=lambda s: s.ts_ms):
        signals.setdefault(signal.service, []).append(signal.name)
    for service, names in signals.items():
        if not service:
            continue
        # Series already speak for an observed service; for one without series the incident's signals are all there is.
        weight = _SIGNAL_LLR * min(len(names), 3) if service not in llr else _SIGNAL_LLR / 3
        extra.setdefault(service, []).append(
            Evidence(
                kind=EvidenceKind.SIGNAL,
                text=f"{len(names)} alert(s)/anomaly(ies) of the incident on it, first {names[0]}",
                weight=weight,
                series=names[0],
                count=len(names),
            )
        )
    for service in list(extra):
        kind = _kind(by_service.get(service, []), None)
        multiplier = case.priors.get((service, kind.value), case.priors.get((service, "*")))
        if multiplier is not None and multiplier > 0 and multiplier != 1.0:
            verdict = "confirmed" if multiplier > 1 else "rejected"
            extra[service].append(
                Evidence(
                    kind=EvidenceKind.FEEDBACK,
                    text=f"operators {verdict} it as the cause of earlier {kind.value} incidents (x{multiplier:.2g})",
                    weight=math.log(multiplier),
                )
            )


def _rules_first(hypotheses: list[Hypothesis], fires: dict[str, RuleFire]) -> list[Hypothesis]:
    """Services whose rule fired come first (by their score among themselves), then the rest as ranked."""
    fired = [h for h in hypotheses if h.service in fires]
    return fired + [h for h in hypotheses if h.service not in fires]


def _kind(series: Sequence[ScoredSeries], fire: RuleFire | None) -> CauseKind:
    if fire is not None:
        return fire.kind
    for s in series:
        if s.llr > 0:
            kind = kind_of(s.key.metric)
            if kind is not CauseKind.UNKNOWN:
                return kind
    return CauseKind.UNKNOWN


def _instant(ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, UTC) if ms is not None else None


def _cause(h: Hypothesis, series: Sequence[ScoredSeries], fire: RuleFire | None, own: float | None) -> RankedCause:
    """The published cause; its most moved series carries the service's own term in the ranking (``own``: what
    its dependencies do not explain), the others are shown for context (weight 0)."""
    findings = [
        MetricFinding(
            series=s.key.metric,
            score=round(s.score.score, 3),
            onset=_instant(s.onset_ms),
            baseline=s.score.baseline.median,
            value=s.score.value,
        )
        for s in series
    ]
    shown = [s for s in series if s.llr > 0][:_SERIES_SHOWN]
    weight = own if own is not None else 0.0
    explained = bool(shown) and weight < shown[0].llr - 1.0
    evidence = [
        Evidence(
            kind=EvidenceKind.SERIES,
            text=(
                f"{s.key.metric} moved to {s.score.value:.4g} from a baseline of {s.score.baseline.median:.4g}"
                f" (robust z {s.score.score:.1f})"
                + (f" at {_instant(s.onset_ms):%Y-%m-%d %H:%M:%S}Z" if s.onset_ms is not None else "")
                + (", most of it explained by the services it calls" if i == 0 and explained else "")
            ),
            weight=weight if i == 0 else 0.0,
            series=s.key.metric,
            onset=_instant(s.onset_ms),
            magnitude=s.score.score,
            baseline=s.score.baseline.median,
            value=s.score.value,
        )
        for i, s in enumerate(shown)
    ]
    return RankedCause(
        service=h.service,
        probability=min(max(h.probability, 0.0), 1.0),
        kind=_kind(series, fire),
        rule=fire.rule if fire is not None else "",
        metrics=findings,
        evidence=sorted([*evidence, *h.evidence], key=lambda e: -abs(e.weight)),
    )


def _summary(causes: Sequence[RankedCause], onset_ms: int | None) -> str:
    if not causes:
        return "no cause ranked"
    top = causes[0]
    why = top.evidence[0].text if top.evidence else ""
    rule = f" (rule: {top.rule})" if top.rule else ""
    return f"probable cause: {top.service}{rule}, P = {top.probability:.2f}; {why}"
