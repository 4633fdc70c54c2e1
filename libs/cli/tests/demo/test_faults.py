"""The shop's fault model: what each fault does to the spans, and what scale, rollback and restart undo."""

from __future__ import annotations

import random

import pytest
from aiops_cli.demo.faults import ROLLOUT_S, SERVICES, ShopError, ShopState, UnknownServiceError, parse_duration
from aiops_cli.demo.traffic import daily_load, requests_in, simulate_request

pytestmark = pytest.mark.unit

NOON = 1_780_000_000 - 1_780_000_000 % 86_400 + 12 * 3600.0


def _mean_duration(state: ShopState, service: str, at: float, n: int = 200) -> float:
    rng = random.Random(7)
    total = 0.0
    for i in range(n):
        spans = simulate_request(state, at + i * 0.01, rng)
        total += sum((s.end_ns - s.start_ns) / 1e9 for s in spans if s.service == service)
    return total / n


def _error_share(state: ShopState, service: str, at: float, n: int = 400) -> float:
    rng = random.Random(3)
    failed = 0
    for i in range(n):
        failed += sum(s.error for s in simulate_request(state, at + i * 0.01, rng) if s.service == service)
    return failed / n


def test_a_request_has_one_span_per_service_each_inside_its_caller() -> None:
    spans = simulate_request(ShopState(), NOON, random.Random(1))
    assert [s.service for s in spans] == ["frontend", "checkout", "payment", "database", "inventory"]
    assert [s.parent for s in spans] == [-1, 0, 1, 2, 1]
    for span in spans[1:]:
        parent = spans[span.parent]
        assert parent.start_ns <= span.start_ns < span.end_ns <= parent.end_ns
    assert abs(spans[0].end_ns / 1e9 - NOON) < 1e-3


def test_latency_slows_the_service_and_its_callers_but_not_its_callees() -> None:
    calm = ShopState()
    slow = ShopState()
    slow.inject("payment", "latency", 300, NOON)
    for service, grows in [("payment", True), ("checkout", True), ("frontend", True), ("database", False)]:
        ratio = _mean_duration(slow, service, NOON + 1) / _mean_duration(calm, service, NOON + 1)
        assert (ratio > 3) is grows, (service, ratio)


def test_scaling_out_ends_a_latency_fault_s_slowness_and_the_status_says_healthy_again() -> None:
    state = ShopState()
    state.inject("payment", "latency", 300, NOON)
    assert state.to_json(NOON + 1)["services"]["payment"]["healthy"] is False  # type: ignore[index]
    slow = _mean_duration(state, "payment", NOON + 1)
    state.scale("payment", 6)
    assert _mean_duration(state, "payment", NOON + 1) < slow / 3
    assert state.to_json(NOON + 1)["services"]["payment"] == {"replicas": 6, "version": "1.4.0", "healthy": True}  # type: ignore[index]


def test_errors_fail_the_service_and_its_callers_with_a_message_and_restart_clears_them() -> None:
    state = ShopState()
    state.inject("payment", "errors", 300, NOON)
    assert _error_share(state, "payment", NOON + 1) > 0.3
    # Callers fail with half of it: the failure shows most where it begins.
    assert 0.05 < _error_share(state, "checkout", NOON + 1) < 0.3
    assert 0.02 < _error_share(state, "frontend", NOON + 1) < _error_share(state, "checkout", NOON + 1)
    assert _error_share(state, "inventory", NOON + 1) < 0.05
    failed = [s for s in simulate_request(state, NOON + 1, random.Random(5)) if s.error]
    assert all(s.message for s in failed)
    state.restart("payment")
    assert _error_share(state, "payment", NOON + 1) < 0.05


def test_cpu_runs_near_100_percent_and_scaling_brings_it_down() -> None:
    state = ShopState()
    assert state.effect("payment", NOON + 1, daily_load(NOON)).cpu_percent < 50
    state.inject("payment", "cpu", 300, NOON)
    assert state.effect("payment", NOON + 1, 1.0).cpu_percent > 90
    assert state.effect("payment", NOON + 1, 1.0).latency_factor > 5
    state.scale("payment", 6)
    assert state.effect("payment", NOON + 1, 1.0).cpu_percent < 50


def test_a_bad_deploy_moves_the_version_and_only_a_rollback_ends_it() -> None:
    state = ShopState()
    state.inject("checkout", "bad-deploy", 60, NOON)
    assert state.services["checkout"].version == "1.5.0"
    # The new version takes traffic after its rollout: the change comes before the failures.
    assert state.effect("checkout", NOON + ROLLOUT_S - 1).error_rate == 0.0
    assert state.effect("checkout", NOON + ROLLOUT_S).error_rate >= 0.3
    # The fault's time running out or a restart do not undo a deployment.
    assert state.effect("checkout", NOON + 120).error_rate >= 0.3
    state.restart("checkout")
    assert state.effect("checkout", NOON + 20).error_rate >= 0.3
    state.rollback("checkout")
    assert state.services["checkout"].version == "1.4.0"
    assert state.effect("checkout", NOON + 20).error_rate < 0.05
    assert state.to_json(NOON + 20)["faults"] == []


def test_faults_end_on_their_own_and_clear_ends_them_early() -> None:
    state = ShopState()
    first = state.inject("payment", "latency", 60, NOON)
    state.inject("inventory", "errors", 600, NOON)
    assert len(state.active_faults(NOON + 30)) == 2
    assert [f.service for f in state.active_faults(NOON + 61)] == ["inventory"]
    assert state.clear(first.id) == 0  # already gone
    assert state.clear() == 1
    assert state.active_faults(NOON + 62) == []
    fault = state.inject("payment", "cpu", 60, NOON)
    assert str(fault.to_json()["until"]).endswith("T12:01:00.000Z")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.inject("shipping", "latency", 60, NOON), "unknown service"),
        (lambda s: s.inject("payment", "meltdown", 60, NOON), "unknown fault kind"),
        (lambda s: s.inject("payment", "cpu", 0, NOON), "for_s"),
        (lambda s: s.inject("payment", "cpu", True, NOON), "for_s"),
        (lambda s: s.scale("payment", 0), "replicas"),
        (lambda s: s.rollback("shipping"), "unknown service"),
    ],
)
def test_bad_requests_are_refused_with_a_reason(call: object, message: str) -> None:
    with pytest.raises(ShopError, match=message):
        call(ShopState())  # type: ignore[operator]


def test_unknown_service_is_its_own_error() -> None:
    with pytest.raises(UnknownServiceError):
        ShopState().restart("shipping")


def test_durations() -> None:
    assert parse_duration("5m") == 300
    assert parse_duration("90") == 90
    assert parse_duration("1h") == 3600
    for bad in ("", "5 minutes", "0s", "2d", "-1m"):
        with pytest.raises(ShopError):
            parse_duration(bad)


def test_daily_shape_is_low_at_night_and_high_in_the_afternoon() -> None:
    day = NOON - 12 * 3600
    assert daily_load(day + 3 * 3600) < 0.7 < 1.3 < daily_load(day + 15 * 3600)
    rng = random.Random(0)
    night = sum(requests_in(day + 3 * 3600, 10, rng) for _ in range(50))
    afternoon = sum(requests_in(day + 15 * 3600, 10, rng) for _ in range(50))
    assert afternoon > 1.5 * night
    assert set(SERVICES) == {"frontend", "checkout", "payment", "database", "inventory"}
