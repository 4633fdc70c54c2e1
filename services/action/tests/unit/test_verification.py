"""The verification verdict: back in the band long enough, not back by the deadline, or still waiting."""

from __future__ import annotations

import math

import pytest
from aiops_action.verification import Outcome, assess

pytestmark = pytest.mark.unit

START = 1_000_000


def _verdict(series: list[tuple[str, list[tuple[int, float]]]], now_s: float, for_s: float = 10.0) -> Outcome:
    return assess(
        series,
        name="red.latency_s",
        lower=None,
        upper=0.5,
        for_s=for_s,
        started_ms=START,
        deadline_ms=START + 60_000,
        now_ms=START + int(now_s * 1000),
    ).outcome


def _points(*values: float, every_s: int = 5) -> list[tuple[int, float]]:
    return [(START + i * every_s * 1000, v) for i, v in enumerate(values)]


def test_recovered_once_inside_for_long_enough() -> None:
    assert _verdict([("a", _points(0.9, 0.3, 0.2, 0.2))], 20) is Outcome.RECOVERED  # inside from 5 s to 15 s
    assert _verdict([("a", _points(0.9, 0.9, 0.3, 0.2))], 20) is Outcome.WAITING  # inside for 5 s only
    assert _verdict([("a", _points(0.2, 0.9))], 20) is Outcome.WAITING  # out again


def test_every_matching_series_must_be_back() -> None:
    good = _points(0.1, 0.1, 0.1)
    assert _verdict([("a", good), ("b", good)], 20) is Outcome.RECOVERED
    assert _verdict([("a", good), ("b", _points(0.1, 0.1, 0.8))], 20) is Outcome.WAITING
    late = assess(
        [("a", good), ("b", _points(0.1, 0.1, 0.8))],
        name="red.latency_s",
        lower=None,
        upper=0.5,
        for_s=10,
        started_ms=START,
        deadline_ms=START + 60_000,
        now_ms=START + 60_000,
    )
    assert late.outcome is Outcome.NOT_RECOVERED and late.detail.startswith("b was 0.8, not <= 0.5")


def test_no_samples_or_samples_from_before_the_steps_are_not_recovery() -> None:
    before = [(START - 5000, 0.1)]
    assert _verdict([("a", before)], 30) is Outcome.WAITING
    assert _verdict([("a", before)], 61) is Outcome.NOT_RECOVERED
    assert _verdict([], 61) is Outcome.NOT_RECOVERED
    assert _verdict([("a", _points(math.nan, math.nan, math.nan))], 61) is Outcome.NOT_RECOVERED


def test_a_lower_bound_and_no_hold_time() -> None:
    verdict = assess(
        [("free", _points(2.0, 12.0))],
        name="disk_free_percent",
        lower=10.0,
        upper=None,
        for_s=0,
        started_ms=START,
        deadline_ms=START + 60_000,
        now_ms=START + 6000,
    )
    assert verdict.outcome is Outcome.RECOVERED and verdict.detail == "disk_free_percent >= 10 for 0 s or more"
