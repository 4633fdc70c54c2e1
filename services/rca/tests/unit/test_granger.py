"""Granger tests: the driven direction found at its lag, independent series left alone at the FDR, bad data skipped."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from aiops_rca.evidence import granger
from aiops_rca.evidence.granger import GrangerTest, direction
from statsmodels.stats.multitest import fdrcorrection
from statsmodels.tsa.stattools import grangercausalitytests

pytestmark = pytest.mark.unit

Array = npt.NDArray[np.float64]
N = 480


def var_pair(rng: np.random.Generator, n: int = N, lag: int = 2, coef: float = 0.6) -> tuple[Array, Array]:
    """x an AR(1); y an AR(1) driven by ``coef * x[t - lag]``: x Granger-causes y, y does not cause x."""
    e = rng.normal(size=(n, 2))
    x = np.zeros(n)
    y = np.zeros(n)
    for t in range(n):
        x[t] = 0.5 * x[t - 1] + e[t, 0] if t else e[t, 0]
        y[t] = (0.3 * y[t - 1] if t else 0.0) + (coef * x[t - lag] if t >= lag else 0.0) + e[t, 1]
    return x, y


def ar1(rng: np.random.Generator, phi: float, n: int = N) -> Array:
    e = rng.normal(size=n)
    out = np.empty(n)
    out[0] = e[0]
    for t in range(1, n):
        out[t] = phi * out[t - 1] + e[t]
    return out


def both_ways(x: Array, y: Array) -> list[tuple[str, str, Array, Array]]:
    return [("svc:x", "svc:y", x, y), ("svc:y", "svc:x", y, x)]


def test_var_lag_two_is_found_in_the_driven_direction_only() -> None:
    rng = np.random.default_rng(11)
    lags: list[int] = []
    for _ in range(10):
        x, y = var_pair(rng)
        forward, backward = granger.test_pairs(both_ways(x, y))
        assert (forward.cause, forward.effect) == ("svc:x", "svc:y")
        assert forward.significant and forward.q_value < 1e-6
        assert not backward.significant
        assert 2 <= forward.lag <= 4
        assert forward.n == N - forward.lag
        lags.append(forward.lag)
        assert direction([forward, backward], "svc:x", "svc:y") == 1
        assert direction([forward, backward], "svc:y", "svc:x") == -1
    assert lags.count(2) >= 8, lags


def test_f_test_is_statsmodels_ssr_ftest_at_the_chosen_lag() -> None:
    x, y = var_pair(np.random.default_rng(3))
    (result,) = granger.test_pairs([("x", "y", x, y)])
    # Stationary, complete series: tested in levels, on every row, as grangercausalitytests does.
    reference = grangercausalitytests(np.column_stack([y, x]), [result.lag])[result.lag][0]["ssr_ftest"]
    assert result.f_stat == pytest.approx(float(reference[0]), rel=1e-9)
    assert result.p_value == pytest.approx(float(reference[1]), rel=1e-6)
    assert result.n == N - result.lag


def test_independent_series_show_nothing_at_the_fdr() -> None:
    rng = np.random.default_rng(5)
    pairs = []
    for i in range(150):
        phi_a, phi_b = (0.0, 0.0) if i % 3 == 0 else (0.5, 0.8) if i % 3 == 1 else (0.9, 0.3)
        pairs.append((f"a{i}", f"b{i}", ar1(rng, phi_a), ar1(rng, phi_b)))
    results = granger.test_pairs(pairs)
    assert len(results) == len(pairs)
    # All nulls: BH at 5 % then bounds the chance of any discovery by 5 %.
    assert sum(r.significant for r in results) <= 1
    # The raw p-values stay roughly calibrated after the lag choice (about 6-7 % below 0.05).
    below = np.mean([r.p_value < 0.05 for r in results])
    assert below < 0.13, below


def test_false_discovery_rate_is_held_in_a_mix_of_true_and_null_pairs() -> None:
    rng = np.random.default_rng(17)
    false_share: list[float] = []
    found = 0
    for _ in range(4):
        pairs = []
        for i in range(40):
            x, y = var_pair(rng, coef=0.25)
            pairs.append((f"true{i}", "y", x, y) if i < 8 else (f"null{i}", "y", x, ar1(rng, 0.3)))
        results = granger.test_pairs(pairs)
        discoveries = [r for r in results if r.significant]
        false_share.append(sum(r.cause.startswith("null") for r in discoveries) / max(1, len(discoveries)))
        found += sum(r.cause.startswith("true") for r in discoveries)
    assert np.mean(false_share) <= 0.12, false_share
    assert found >= 28, found


def test_random_walks_are_differenced_so_trends_are_not_causes() -> None:
    rng = np.random.default_rng(23)
    pairs = [(f"a{i}", f"b{i}", rng.normal(size=N).cumsum(), rng.normal(size=N).cumsum()) for i in range(60)]
    # Two independent trends with noise: the classic spurious regression in levels.
    t = np.arange(N, dtype=np.float64)
    pairs += [(f"c{i}", f"d{i}", 0.05 * t + rng.normal(size=N), 0.08 * t + rng.normal(size=N)) for i in range(20)]
    # A walk whose steps follow another walk's steps two points later is still found.
    steps = rng.normal(size=N)
    driven = np.r_[0.0, 0.0, steps[:-2]] + 0.5 * rng.normal(size=N)
    pairs.append(("walk", "follower", steps.cumsum(), driven.cumsum()))
    results = granger.test_pairs(pairs)
    assert len(results) == len(pairs)
    assert [r.cause for r in results if r.significant] == ["walk"]
    assert results[-1].lag == 2
    assert results[-1].n == N - 1 - 2  # one point lost to the difference, two to the lag


def test_level_shift_that_comes_first_is_the_cause() -> None:
    rng = np.random.default_rng(29)
    shift = np.zeros(N)
    shift[300:] = 5.0
    upstream = shift + 0.3 * rng.normal(size=N)
    downstream = np.roll(shift, 3) * 0.8 + 0.3 * rng.normal(size=N)
    results = granger.test_pairs(both_ways(upstream, downstream))
    assert direction(results, "svc:x", "svc:y") == 1


def test_constant_near_constant_and_empty_series_are_skipped() -> None:
    rng = np.random.default_rng(31)
    x, y = var_pair(rng)
    flat = np.full(N, 3.0)
    near_flat = 1.0 + 1e-13 * rng.normal(size=N)
    results = granger.test_pairs(
        [
            ("flat", "y", flat, y),
            ("x", "flat", x, flat),
            ("near", "y", near_flat, y),
            ("zeros", "y", np.zeros(N), y),
            ("nan", "y", np.full(N, np.nan), y),
            ("x", "y", x, y),
            # Varies only where the other series is missing: flat over the pair's overlap.
            ("masked", "y", np.where(np.arange(N) < 400, 2.0, x), np.where(np.arange(N) < 400, y, np.nan)),
            # A linear trend is flat once differenced.
            ("ramp", "y", np.arange(N, dtype=np.float64), y),
        ]
    )
    assert [(r.cause, r.effect) for r in results] == [("x", "y")]
    # Alone in the call, so its q-value is its p-value.
    assert results[0].q_value == pytest.approx(results[0].p_value)


def test_collinear_and_perfectly_fitted_pairs_are_skipped() -> None:
    rng = np.random.default_rng(37)
    x = ar1(rng, 0.5)
    lagged = np.r_[0.0, x[:-1]]
    results = granger.test_pairs(
        [("same", "x", x, x.copy()), ("x", "lagged", x, lagged), ("scaled", "x", 2 * x + 1, x)]
    )
    assert results == []


def test_short_gaps_are_interpolated_long_gaps_drop_their_rows() -> None:
    rng = np.random.default_rng(41)
    x, y = var_pair(rng)
    x_gappy, y_gappy = x.copy(), y.copy()
    for start in range(20, 400, 37):  # one- to three-point gaps, interpolated
        x_gappy[start : start + 1 + start % 3] = np.nan
    y_gappy[100:103] = np.nan
    y_gappy[200] = np.inf  # non-finite counts as missing
    (short,) = granger.test_pairs([("x", "y", x_gappy, y_gappy)])
    assert short.significant and short.n == N - short.lag

    y_long = y.copy()
    y_long[150:190] = np.nan  # a 40-point outage: rows reading it are dropped, not filled
    x_long = x.copy()
    x_long[:5] = np.nan  # a leading gap is never extrapolated
    (long,) = granger.test_pairs([("x", "y", x_long, y_long)])
    assert long.significant
    assert long.n == N - long.lag - 40 - long.lag - 5
    # The caller's arrays are left as they were.
    assert np.isinf(y_gappy[200]) and np.isnan(x_gappy[20]) and np.isnan(y_long[150:190]).all()


def test_too_few_points_are_skipped() -> None:
    rng = np.random.default_rng(43)
    x, y = var_pair(rng, n=25)
    assert granger.test_pairs([("x", "y", x, y)]) == []
    x, y = var_pair(rng, n=120)
    assert granger.test_pairs([("x", "y", x, y)], min_points=200) == []
    sparse_x = x.copy()
    sparse_x[::2] = np.nan  # one-point gaps everywhere are filled, so this still tests
    assert len(granger.test_pairs([("x", "y", sparse_x, y)])) == 1
    mostly_missing = np.full(120, np.nan)
    mostly_missing[:20] = y[:20]
    assert granger.test_pairs([("x", "y", x, mostly_missing)]) == []


def test_lag_is_capped_by_the_points_available() -> None:
    x, y = var_pair(np.random.default_rng(47), n=40)
    results = granger.test_pairs([("x", "y", x, y)], max_lag=12)
    assert len(results) == 1
    assert 3 * results[0].lag + 10 < results[0].n


def test_benjamini_hochberg_on_a_known_example() -> None:
    # p = .01 .04 .03 .005 .20 -> sorted p * m / rank = .025 .025 .05 .05 .20, already monotone.
    _, q = fdrcorrection(np.array([0.01, 0.04, 0.03, 0.005, 0.20]), alpha=0.05, method="indep")
    assert q == pytest.approx([0.025, 0.05, 0.05, 0.025, 0.20])
    # .04 * 2 / 1 = .08 exceeds the next rank's .041 * 2 / 2: the step-up takes the minimum.
    _, q = fdrcorrection(np.array([0.04, 0.041]), alpha=0.05, method="indep")
    assert q == pytest.approx([0.041, 0.041])


def test_q_values_adjust_every_test_of_the_call_and_skipped_pairs_do_not_count() -> None:
    rng = np.random.default_rng(54)
    pairs = []
    for i in range(6):
        x, y = var_pair(rng, coef=0.05 * i)
        pairs.append((f"x{i}", f"y{i}", x, y))
    pairs.insert(2, ("flat", "y0", np.ones(N), pairs[0][3]))
    results = granger.test_pairs(pairs, alpha=0.1)
    assert [r.cause for r in results] == [f"x{i}" for i in range(6)]
    p = np.array([r.p_value for r in results])
    m = len(p)
    order = np.argsort(p)
    expected = np.minimum.accumulate((p[order] * m / np.arange(1, m + 1))[::-1])[::-1]
    q = np.empty(m)
    q[order] = np.minimum(expected, 1.0)
    assert [r.q_value for r in results] == pytest.approx(list(q))
    assert [r.significant for r in results] == [bool(v <= 0.1) for v in q]
    assert any(r.significant for r in results) and not all(r.significant for r in results)


def _t(cause: str, effect: str, significant: bool) -> GrangerTest:
    p = 0.001 if significant else 0.5
    return GrangerTest(cause, effect, lag=1, f_stat=1.0, p_value=p, q_value=p, significant=significant, n=100)


@pytest.mark.parametrize(
    ("tests", "expected"),
    [
        ([_t("a", "b", True), _t("b", "a", False)], 1),
        ([_t("a", "b", False), _t("b", "a", True)], -1),
        ([_t("a", "b", True), _t("b", "a", True)], 0),
        ([_t("a", "b", False), _t("b", "a", False)], 0),
        ([_t("a", "b", True)], 1),  # the reverse was not tested: not significant
        ([_t("b", "a", True)], -1),
        ([], 0),
        ([_t("a", "c", True), _t("c", "b", True)], 0),  # other pairs say nothing about a and b
    ],
)
def test_direction(tests: list[GrangerTest], expected: int) -> None:
    assert direction(tests, "a", "b") == expected
    assert direction(tests, "b", "a") == -expected


def test_direction_compares_whole_labels() -> None:
    # Service and metric names may both hold ':'.
    a, b = "petInfo_AWS::DynamoDB::Table:red.latency_s", "petInfo_AWS::DynamoDB:Table:red.latency_s"
    assert direction([_t(a, b, True)], a, b) == 1
    assert direction([_t(a, b, True)], b, a) == -1
    assert direction([_t(a, b, True)], a, a) == 0


def test_bad_arguments_raise() -> None:
    x = np.zeros(50)
    with pytest.raises(ValueError, match="equal length"):
        granger.test_pairs([("x", "y", x, np.zeros(49))])
    with pytest.raises(ValueError, match="1-d"):
        granger.test_pairs([("x", "y", np.zeros((5, 10)), np.zeros((5, 10)))])
    with pytest.raises(ValueError, match="max_lag"):
        granger.test_pairs([], max_lag=0)
    with pytest.raises(ValueError, match="alpha"):
        granger.test_pairs([], alpha=1.5)
    assert granger.test_pairs([]) == []
