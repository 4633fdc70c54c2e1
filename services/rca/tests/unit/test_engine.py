"""The engine on small cases whose right answer is known: faults, decoys, rules, missing sources, bad data."""

from __future__ import annotations

import numpy as np
import pytest
from aiops_common.schemas import CauseKind, EvidenceKind, RcaStatus
from aiops_rca.case import Case, CaseChange, CaseSignal, SeriesKey, TraceOrigin
from aiops_rca.engine import RcaConfig, analyze
from aiops_rca.settings import RcaSettings
from pydantic import ValidationError

pytestmark = pytest.mark.unit

STEP_MS = 10_000
START_MS = 1_767_225_600_000
NORMAL = 360  # an hour of 10 s points before onset
AFTER = 60
ONSET_MS = START_MS + NORMAL * STEP_MS
LATENCY = "red.latency_s:value_10s"
ERRORS = "red.error_rate:value_10s"
RATE = "red.request_rate:value_10s"
CPU = "process.cpu.utilization:value_10s"
RESTARTS = "k8s.container.restarts:value_10s"

# frontend -> checkout -> payment -> db ; checkout -> inventory ; search stands alone.
CALLS = [("frontend", "checkout"), ("checkout", "payment"), ("payment", "db"), ("checkout", "inventory")]
SERVICES = ["frontend", "checkout", "payment", "db", "inventory", "search"]


def _grid() -> np.ndarray:
    return START_MS + STEP_MS * np.arange(NORMAL + AFTER, dtype=np.int64)


def _platform(
    root: str = "db",
    *,
    extra: float = 1.0,
    noise: float = 0.01,
    seed: int = 1,
    amplify: float = 3.0,
) -> dict[SeriesKey, np.ndarray]:
    """Latency that adds up along the calls, a fault adding ``extra`` seconds to ``root`` from onset on;
    each caller waits ``amplify`` times per request on a callee (so callers move further than the root)."""
    rng = np.random.default_rng(seed)
    n = NORMAL + AFTER
    own = {s: 0.02 + rng.normal(0, noise, n) for s in SERVICES}
    own[root][NORMAL:] += extra
    latency: dict[str, np.ndarray] = {}
    for service in ["db", "inventory", "payment", "checkout", "frontend", "search"]:
        total = own[service].copy()
        for caller, callee in CALLS:
            if caller == service:
                total += amplify * latency[callee]
        latency[service] = total
    series = {}
    for service in SERVICES:
        series[SeriesKey(service, LATENCY)] = latency[service]
        series[SeriesKey(service, ERRORS)] = np.abs(rng.normal(0.01, 0.002, n))
        series[SeriesKey(service, RATE)] = 50 + rng.normal(0, 2, n)
        series[SeriesKey(service, CPU)] = np.clip(0.3 + rng.normal(0, 0.02, n), 0, 1)
    return series


def _case(series: dict[SeriesKey, np.ndarray], **kwargs: object) -> Case:
    defaults: dict[str, object] = {
        "edges": list(CALLS),
        "services": ["frontend"],
        "incident_services": ["frontend"],
        "signals": [CaseSignal("frontend", "HighLatency", ONSET_MS + 60_000)],
        "onset_ms": ONSET_MS + 60_000,
    }
    defaults.update(kwargs)
    return Case(ts_ms=_grid(), series=series, **defaults)  # type: ignore[arg-type]


def _top(case: Case, config: RcaConfig | None = None) -> str:
    analysis = analyze(case, config)
    assert analysis.causes, analysis.summary
    return analysis.causes[0].service


@pytest.mark.parametrize("root", ["db", "payment", "inventory", "checkout"])
def test_the_callee_that_slowed_is_first_though_its_callers_move_further(root: str) -> None:
    analysis = analyze(_case(_platform(root)))
    assert analysis.status is RcaStatus.OK
    top = analysis.causes[0]
    assert top.service == root
    assert top.kind is CauseKind.LATENCY
    assert 0.5 < top.probability <= 1.0
    assert sum(c.probability for c in analysis.causes) <= 1.0 + 1e-9
    kinds = {e.kind for e in top.evidence}
    assert EvidenceKind.SERIES in kinds
    series = next(e for e in top.evidence if e.kind is EvidenceKind.SERIES)
    assert series.series == LATENCY and series.magnitude is not None and series.magnitude > 5
    assert series.onset is not None and top.metrics[0].series == LATENCY
    if root != "frontend":
        path = [e for e in top.evidence if e.kind is EvidenceKind.TOPOLOGY and e.effect == "frontend"]
        assert path and "frontend" in path[0].text


def test_an_unrelated_noisy_service_does_not_outrank_the_origin() -> None:
    series = _platform("payment")
    rng = np.random.default_rng(7)
    spikes = np.zeros(NORMAL + AFTER)
    spikes[NORMAL + 5 : NORMAL + 8] = 3.0  # search spikes far harder, but explains nothing that moved
    series[SeriesKey("search", LATENCY)] = 0.02 + rng.normal(0, 0.01, NORMAL + AFTER) + spikes
    assert _top(_case(series)) == "payment"


def test_a_root_without_series_is_ranked_by_the_callers_it_explains() -> None:
    series = {k: v for k, v in _platform("db").items() if k.service != "db"}  # a managed datastore: no series
    analysis = analyze(_case(series))
    ranked = [c.service for c in analysis.causes]
    assert ranked[0] == "payment"  # the deepest service that moved: the best the series can say
    assert "db" in ranked[:5] and ranked.index("db") < ranked.index("search")
    db = analysis.causes[ranked.index("db")]
    assert any(e.kind is EvidenceKind.TOPOLOGY and "payment" in e.text for e in db.evidence)


def test_a_deployment_on_the_origin_fires_the_rule_and_a_decoy_deployment_does_not() -> None:
    changes = [
        CaseChange(ONSET_MS - 120_000, "payment", "v2.4.1", id="chg-1"),
        CaseChange(ONSET_MS - 300_000, "search", "v9", id="chg-2"),  # healthy: a decoy
    ]
    analysis = analyze(_case(_platform("payment"), changes=changes))
    top = analysis.causes[0]
    assert top.service == "payment" and top.rule == "deployment"
    change = next(e for e in top.evidence if e.kind is EvidenceKind.CHANGE)
    assert change.version == "v2.4.1" and change.change_id == "chg-1" and change.before_onset_s is not None
    assert all(c.rule == "" for c in analysis.causes if c.service == "search")


def test_a_deployment_on_a_caller_of_the_origin_does_not_fire_the_rule() -> None:
    changes = [CaseChange(ONSET_MS - 120_000, "checkout", "v7", id="chg-3")]
    analysis = analyze(_case(_platform("db"), changes=changes))
    assert analysis.causes[0].service == "db"
    assert all(c.rule != "deployment" for c in analysis.causes)


def test_a_saturated_resource_fires_the_saturation_rule() -> None:
    series = _platform("inventory")
    cpu = series[SeriesKey("inventory", CPU)]
    cpu[NORMAL:] = 0.99
    analysis = analyze(_case(series))
    top = analysis.causes[0]
    assert (top.service, top.rule, top.kind) == ("inventory", "saturation", CauseKind.SATURATION)


def test_a_restart_counter_climbing_fires_the_crash_loop_rule() -> None:
    series = _platform("payment")
    restarts = np.zeros(NORMAL + AFTER)
    restarts[NORMAL:] = np.arange(AFTER) // 10  # six restarts in ten minutes
    series[SeriesKey("payment", RESTARTS)] = restarts
    top = analyze(_case(series)).causes[0]
    assert (top.service, top.rule, top.kind) == ("payment", "crash_loop", CauseKind.CRASH)


def test_first_failing_spans_are_evidence_for_their_service() -> None:
    traces = [TraceOrigin("db", 40, "abc123", "SELECT orders"), TraceOrigin("checkout", 5)]
    analysis = analyze(_case(_platform("db"), traces=traces))
    top = analysis.causes[0]
    span = next(e for e in top.evidence if e.kind is EvidenceKind.SPAN)
    assert top.service == "db" and span.count == 40 and span.trace_id == "abc123" and span.weight > 0


def test_operator_feedback_moves_the_prior() -> None:
    series = _platform("db", extra=0.05, seed=3)
    plain = {c.service: c.probability for c in analyze(_case(series)).causes}
    rejected = analyze(_case(series, priors={("db", "*"): 0.2}))
    moved = {c.service: c.probability for c in rejected.causes}
    assert moved["db"] < plain["db"]
    db = next(c for c in rejected.causes if c.service == "db")
    assert any(e.kind is EvidenceKind.FEEDBACK and e.weight < 0 for e in db.evidence)


def test_a_named_target_that_did_not_move_gives_no_ranking() -> None:
    series = _platform("db", extra=0.0)
    analysis = analyze(_case(series, target=SeriesKey("frontend", LATENCY)))
    assert analysis.status is RcaStatus.NO_ANOMALY and analysis.causes == []
    assert "did not move" in analysis.summary


def test_nothing_moved_gives_no_ranking() -> None:
    analysis = analyze(_case(_platform("db", extra=0.0), signals=[], incident_services=[]))
    assert analysis.status is RcaStatus.NO_ANOMALY and analysis.causes == []


def test_the_onset_is_found_from_the_series_when_not_given() -> None:
    analysis = analyze(_case(_platform("payment"), onset_ms=None))
    assert analysis.onset_ms is not None and abs(analysis.onset_ms - ONSET_MS) <= 3 * STEP_MS
    assert analysis.causes[0].service == "payment"


def test_missing_sources_make_the_result_degraded_not_an_error() -> None:
    analysis = analyze(_case(_platform("db"), missing=["topology: connection refused"], edges=[]))
    assert analysis.status is RcaStatus.DEGRADED
    assert "topology: connection refused" in analysis.missing
    assert analysis.causes  # a ranking from the series alone


def test_unusable_data_is_skipped_without_raising() -> None:
    series = _platform("db")
    series[SeriesKey("db", "short")] = np.ones(5)  # wrong length
    series[SeriesKey("db", "empty")] = np.full(NORMAL + AFTER, np.nan)
    series[SeriesKey("db", "flat")] = np.ones(NORMAL + AFTER)
    assert _top(_case(series)) == "db"
    empty = Case(ts_ms=np.zeros(0, dtype=np.int64), series={})
    assert analyze(empty).status is RcaStatus.NO_ANOMALY


def test_granger_direction_is_evidence_when_the_window_is_contiguous() -> None:
    n = NORMAL + AFTER
    rng = np.random.default_rng(11)
    driver = 0.05 + rng.normal(0, 0.01, n)
    driver[NORMAL:] += rng.normal(0.3, 0.15, AFTER)  # an erratic slowdown whose shape the caller copies
    follower = 0.02 + rng.normal(0, 0.005, n)
    follower[2:] += 2 * driver[:-2]
    series = {SeriesKey("payment", LATENCY): driver, SeriesKey("checkout", LATENCY): follower}
    case = _case(
        series,
        edges=[("checkout", "payment")],
        services=["checkout"],
        incident_services=["checkout"],
        signals=[CaseSignal("checkout", "HighLatency", ONSET_MS)],
    )
    top = analyze(case).causes[0]
    assert top.service == "payment"
    granger = [e for e in top.evidence if e.kind is EvidenceKind.GRANGER]
    assert granger and granger[0].lag is not None and granger[0].q_value is not None and granger[0].q_value <= 0.05


def test_with_no_series_the_alerts_and_the_topology_still_rank() -> None:
    signals = [
        CaseSignal("payment", "HighLatency", ONSET_MS),
        CaseSignal("checkout", "HighLatency", ONSET_MS + 30_000),
        CaseSignal("frontend", "HighLatency", ONSET_MS + 60_000),
    ]
    case = _case({}, signals=signals, onset_ms=ONSET_MS, missing=["tsdb: connection refused"])
    analysis = analyze(case)
    assert analysis.status is RcaStatus.DEGRADED
    assert analysis.causes[0].service == "payment"  # the deepest alerted service explains the other alerts


def test_with_less_history_than_pre_onset_the_first_points_are_the_baseline() -> None:
    # Two minutes of history before the onset the alert gives: less than the 300 s the window starts before it.
    keep = slice(NORMAL - 6, NORMAL + AFTER)
    series = {k: v[keep] for k, v in _platform("payment").items()}
    case = _case(series)
    case.ts_ms = _grid()[keep]
    analysis = analyze(case)
    assert analysis.status is RcaStatus.OK
    top = analysis.causes[0]
    assert top.service == "payment" and top.kind is CauseKind.LATENCY
    # A series that began later than the rest (a new pod) is scored from its own first points before onset.
    late = dict(_platform("payment"))
    late[SeriesKey("payment", LATENCY)] = np.r_[
        np.full(NORMAL - 8, np.nan), late[SeriesKey("payment", LATENCY)][NORMAL - 8 :]
    ]
    analysis = analyze(_case(late))
    assert analysis.causes[0].service == "payment" and analysis.causes[0].kind is CauseKind.LATENCY


def test_pre_onset_is_a_setting_validated_positive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIOPS_RCA_PRE_ONSET_S", "120")
    assert RcaSettings().config().pre_onset_s == 120.0
    for bad in ("0", "-5"):
        monkeypatch.setenv("AIOPS_RCA_PRE_ONSET_S", bad)
        with pytest.raises(ValidationError):
            RcaSettings()
