"""Limits come from the settings; the time window and timestamp parsing behave at their edges."""

from __future__ import annotations

import math
from typing import Any

import pytest
from aiops_ingestion.normalize import Limits, TimeWindow, parse_timestamp_ns
from aiops_ingestion.normalize._timestamps import EARLIEST_MS
from aiops_ingestion.settings import IngestionSettings

pytestmark = pytest.mark.unit

NOW_MS = 1_700_000_000_000


def test_limits_are_read_from_the_settings() -> None:
    settings = IngestionSettings(
        ingest_max_labels_per_series=10,
        ingest_max_label_name_length=20,
        ingest_max_label_value_length=30,
        ingest_max_series_per_request=40,
        ingest_max_future_skew_s=50.0,
        ingest_max_sample_age_s=60.0,
        ingest_max_decompressed_bytes=70,
    )
    assert Limits.from_settings(settings) == Limits(10, 20, 30, 40, 50.0, 60.0, 70)


def test_default_limits_match_the_default_settings() -> None:
    assert Limits.from_settings(IngestionSettings()) == Limits()


def test_window_is_inclusive_at_both_edges() -> None:
    window = Limits(max_future_skew_s=1.5, max_sample_age_s=2.0).window(NOW_MS)
    assert (window.min_ms, window.max_ms) == (NOW_MS - 2000, NOW_MS + 1500)
    assert window.problem_ms(NOW_MS - 2000) is None and window.problem_ms(NOW_MS + 1500) is None
    assert window.problem_ms(NOW_MS - 2001) is not None and window.problem_ms(NOW_MS + 1501) is not None
    assert window.problem_ns(window.max_ns) is None and window.problem_ns(window.max_ns + 1) is not None
    assert window.problem_ns(window.min_ns) is None and window.problem_ns(window.min_ns - 1) is not None


def test_window_without_age_limit_still_refuses_zero_negative_and_1970_times() -> None:
    window = TimeWindow.around(NOW_MS, 600, 0)
    assert window.problem_ms(EARLIEST_MS) is None and window.problem_ms(1_000_000_000_000) is None
    assert "not a valid time" in (window.problem_ms(0) or "") and "not a valid time" in (window.problem_ms(-1) or "")
    assert "is before 1971, not a plausible time" in (window.problem_ms(EARLIEST_MS - 1) or "")
    assert "is before 1971, not a plausible time" in (window.problem_ns(1) or "")


S = NOW_MS // 1000  # the same moment in each unit
MS, US, NS = NOW_MS, NOW_MS * 1000, NOW_MS * 10**6


@pytest.mark.parametrize("max_sample_age_s", [0, 7 * 86_400, 100 * 365 * 86_400])
@pytest.mark.parametrize(
    ("field", "value", "mistake"),
    [
        ("ns", MS, "looks like milliseconds where Unix nanoseconds are expected"),
        ("ns", S, "looks like seconds where Unix nanoseconds are expected"),
        ("ns", US, "looks like microseconds where Unix nanoseconds are expected"),
        ("ms", S, "looks like seconds where Unix milliseconds are expected"),
        ("ms", US, "looks like microseconds where Unix milliseconds are expected"),
        ("ms", NS, "looks like nanoseconds where Unix milliseconds are expected"),
    ],
)
def test_a_time_in_the_wrong_unit_is_named_whatever_the_age_limit(
    field: str, value: int, mistake: str, max_sample_age_s: float
) -> None:
    window = TimeWindow.around(NOW_MS, 600, max_sample_age_s)
    problem = window.problem_ns(value) if field == "ns" else window.problem_ms(value)
    assert problem is not None and mistake in problem, problem
    assert "2023-11-14T22:13:20" in problem, "the message shows the time the value would be in the likely unit"


def test_a_time_in_the_right_unit_is_accepted_in_every_field() -> None:
    window = TimeWindow.around(NOW_MS, 600, 0)
    assert window.problem_ms(MS) is None and window.problem_ns(NS) is None


def test_an_old_time_names_the_age_setting_and_its_value() -> None:
    problem = TimeWindow.around(NOW_MS, 600, 3600).problem_ms(NOW_MS - 7200_000)
    assert problem is not None
    assert "7200s old, older than the accepted 3600s (AIOPS_INGEST_MAX_SAMPLE_AGE_S=3600; 0 turns" in problem
    ahead = TimeWindow.around(NOW_MS, 600, 3600).problem_ms(NOW_MS + 700_000)
    assert ahead is not None and "(AIOPS_INGEST_MAX_FUTURE_SKEW_S=600)" in ahead


def test_a_1970_time_that_no_unit_explains_is_refused_as_implausible() -> None:
    window = TimeWindow.around(NOW_MS, 600, 0)
    problem = window.problem_ns(20 * 86_400 * 10**9)  # 1970-01-21 in nanoseconds: no other unit lands near now
    assert problem is not None and "before 1971, not a plausible time in Unix nanoseconds" in problem


def test_window_defaults_to_the_server_clock() -> None:
    window = Limits().window()
    assert window.now_ms > NOW_MS and window.problem_ms(window.now_ms) is None


@pytest.mark.parametrize(
    ("value", "ns"),
    [
        ("2023-11-14T22:13:20Z", NOW_MS * 10**6),
        ("2023-11-14T22:13:20.000001Z", NOW_MS * 10**6 + 1000),
        ("2023-11-14T22:13:20.123456789Z", NOW_MS * 10**6 + 123_456_000),
        (1_700_000_000, NOW_MS * 10**6),
        (1_700_000_000.5, NOW_MS * 10**6 + 500_000_000),
        (NOW_MS, NOW_MS * 10**6),
        (NOW_MS + 0.5, NOW_MS * 10**6 + 500_000),
        (" 1700000000 ", NOW_MS * 10**6),
    ],
)
def test_timestamps_parse_from_rfc3339_seconds_and_milliseconds(value: Any, ns: int) -> None:
    assert parse_timestamp_ns(value) == ns


@pytest.mark.parametrize(
    "value",
    ["", "now", "2023-11-14T22:13:20", "1969-12-31T00:00:00Z", -1, 0, 1e14, math.nan, math.inf, True, None, [1]],
)
def test_invalid_timestamps_raise_value_error(value: Any) -> None:
    with pytest.raises(ValueError):
        parse_timestamp_ns(value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (NOW_MS * 1000, "looks like microseconds: send Unix seconds or milliseconds"),
        (NOW_MS * 10**6, "looks like nanoseconds: send Unix seconds or milliseconds"),
        (str(NOW_MS * 10**6), "looks like nanoseconds"),
        (86_400, "is before 1971, not a plausible time"),
        ("1970-06-01T00:00:00Z", "is before 1971, not a plausible time"),
    ],
)
def test_json_timestamps_in_the_wrong_unit_name_the_likely_unit(value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_timestamp_ns(value)
