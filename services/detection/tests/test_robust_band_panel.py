"""Tier 1 across series: the panel, the streaming detector and ``explain_many`` give the same floats."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from aiops_detection import Cascade, RobustBandDetector, SeasonalForecastDetector, WindowModelDetector
from aiops_detection.detectors.calibration import RunningMax, RunningMaxPanel, lagging_extremes
from aiops_detection.detectors.robust_band import RobustBandPanel

pytestmark = pytest.mark.unit


def small_tier1() -> RobustBandDetector:
    # Windows long enough to be blocked (band: 6 values a block, record: 2), short enough to wrap often.
    return RobustBandDetector(band_window=300, z_window=30, record_window=100, min_history=60)


def mixed_series(n: int, kind: int, rng: np.random.Generator) -> np.ndarray:
    """A noisy cycle, plus per kind: a constant stretch, whole numbers (ties), spikes, a level shift, all constant."""
    values = 10.0 + 3.0 * np.sin(np.arange(n) / 7.0) + rng.normal(0.0, 0.5, n)
    if kind == 1:
        values[n // 3 : n // 3 + 150] = 4.0
    elif kind == 2:
        values = np.round(values)
    elif kind == 3:
        values[rng.integers(0, n, 5)] += rng.uniform(10.0, 40.0, 5)
    elif kind == 4:
        values[n // 2 :] += 8.0
    elif kind == 5:
        values[:] = 2.5
    return values


def same(a: float, b: float) -> bool:
    return a == b or (np.isnan(a) and np.isnan(b))


@pytest.mark.parametrize(("size", "block"), [(1, 1), (20, 1), (50, 5), (37, 4), (500, 10)])
def test_blocked_running_max_equals_its_panel_and_its_vectorised_form(
    size: int, block: int, rng: np.random.Generator
) -> None:
    values = rng.normal(size=(3, 700))
    values[1, 100:400] = 1.0  # ties
    lower, upper = lagging_extremes(values, size, block)
    panel = RunningMaxPanel(size, block, rows=3)
    rows = np.arange(3)
    streams = [RunningMax(size, block) for _ in rows]
    for t in range(values.shape[1]):
        expected = [np.nan if s.maximum is None else s.maximum for s in streams]
        np.testing.assert_array_equal(panel.maximum(rows), expected)
        np.testing.assert_array_equal(upper[:, t], expected)
        panel.push(rows, values[:, t])
        for s, x in zip(streams, values[:, t].tolist(), strict=True):
            s.push(x)
    assert [pickle.dumps(panel.get(i)) for i in rows] == [pickle.dumps(s) for s in streams]
    # The blocked window holds the values of ceil(size / block) whole blocks and of the current one.
    whole = -(-size // block) * block
    assert np.all(lower[:, 1:] <= lagging_extremes(values, whole)[0][:, 1:])
    assert np.all(lower[:, 1:] >= lagging_extremes(values, whole + block - 1)[0][:, 1:])


def test_panel_equals_the_stream_and_the_batch_form_for_many_series(rng: np.random.Generator) -> None:
    template = small_tier1()
    count = 48
    lengths = rng.integers(1, 1000, count)
    lengths[:3] = [1, 59, 61]  # nothing but cold start, just before and just after it
    data = [mixed_series(int(n), i % 6, rng) for i, n in enumerate(lengths)]
    batch = template.explain_many([d.tolist() for d in data])
    panel = RobustBandPanel(template)
    rows = np.array([panel.add() for _ in data])
    streams = [template.clone() for _ in data]
    for t in range(int(lengths.max())):
        # Series take part in rounds in any order and subset, as windows arrive in a partition.
        active = rng.permutation(np.flatnonzero(lengths > t))
        values = np.array([data[i][t] for i in active])
        explained = panel.step(rows[active], values)
        for j, i in enumerate(active.tolist()):
            stream, x = streams[i], float(values[j])
            score, (lower, upper) = stream.score_one(x), stream.expected_band()
            stream.learn_one(x)
            got = explained.score[j], explained.lower[j], explained.upper[j]
            assert got == (score, lower, upper) or all(map(same, got, (score, lower, upper))), (i, t)
            assert all(map(same, got, (batch.score[i, t], batch.lower[i, t], batch.upper[i, t]))), (i, t)
            assert explained.band[j] == batch.band[i, t] and explained.ratio[j] == batch.ratio[i, t]
    assert np.all(np.isnan(batch.score[lengths[:, None] <= np.arange(batch.score.shape[1])]))
    # The panel's rows come back out as the detectors the stream built, to the byte.
    assert [pickle.dumps(panel.take(r)) for r in rows.tolist()] == [pickle.dumps(s) for s in streams]
    scores = batch.score[np.isfinite(batch.score)]
    assert scores.max() > 0.9 and (scores < 0.5).mean() > 0.9  # the comparison saw alerts and quiet points


def test_a_detector_moved_into_a_panel_continues_exactly(rng: np.random.Generator) -> None:
    template = small_tier1()
    values = mixed_series(900, 3, rng)
    moved, kept = template.clone(), template.clone()
    for x in values[:400].tolist():
        moved.learn_one(x)
        kept.learn_one(x)
    panel = RobustBandPanel(template)
    panel.add()  # another series first: rows are not positions in time
    row = panel.add(moved)
    for x in values[400:].tolist():
        explained = panel.step(np.array([row]), np.array([x]))
        assert explained.score[0] == kept.score_one(x)
        assert all(map(same, (explained.lower[0], explained.upper[0]), kept.expected_band()))
        kept.learn_one(x)
    back = panel.take(row)
    assert pickle.dumps(back) == pickle.dumps(kept)
    panel.put(0, back)
    assert pickle.dumps(panel.take(0)) == pickle.dumps(kept)
    with pytest.raises(ValueError, match="does not fit"):
        panel.add(RobustBandDetector(z_window=20))


def test_a_released_row_is_handed_out_again_as_fresh_as_a_new_detector(rng: np.random.Generator) -> None:
    template = small_tier1()
    values = mixed_series(300, 3, rng)
    panel = RobustBandPanel(template)
    rows = np.array([panel.add(), panel.add()])
    for x in values[:200].tolist():
        panel.step(rows, np.array([x, -x]))
    panel.release(int(rows[0]))
    assert len(panel) == 1
    with pytest.raises(ValueError, match="not in use"):
        panel.release(int(rows[0]))
    again = panel.add()  # a new series takes the forgotten one's row
    assert again == rows[0] and len(panel) == 2
    assert pickle.dumps(panel.take(again)) == pickle.dumps(template.clone())
    fresh = template.clone()
    for x in values[200:].tolist():
        explained = panel.step(np.array([again]), np.array([x]))
        assert explained.score[0] == fresh.score_one(x)
        fresh.learn_one(x)


def test_the_cascade_given_tier_1_from_elsewhere_gives_verdict_one(rng: np.random.Generator) -> None:
    def cascade() -> Cascade:
        agile = SeasonalForecastDetector(periods=(24,), refit_every=100, residual_window=40, min_history=150)
        robust = WindowModelDetector(
            window=6, periods=(24,), history=200, refit_every=100, hidden=8, latent=2, epochs=20, min_history=150
        )
        basic = RobustBandDetector(band_window=300, z_window=30, record_window=100, min_history=150)
        return Cascade(basic, agile, robust)

    values = 10 + 3 * np.sin(2 * np.pi * np.arange(420) / 24) + rng.normal(0, 0.3, 420)
    values[[300, 360, 400]] += [6.0, -9.0, 12.0]
    whole, split = cascade(), cascade()
    panel = RobustBandPanel(split.basic)
    row = np.array([panel.add()])
    tiers_run: set[str] = set()
    for x in values.tolist():
        explained = panel.step(row, np.array([x]))
        basic = (float(explained.score[0]), float(explained.lower[0]), float(explained.upper[0]))
        expected, got = whole.verdict_one(x), split.verdict_given_basic(x, *basic)
        assert (got.score, got.severity, got.evidence) == (expected.score, expected.severity, expected.evidence)
        assert same(got.lower, expected.lower) and same(got.upper, expected.upper)
        tiers_run |= set(got.evidence)
        whole.learn_one(x)
        split.learn_deeper_one(x)
    assert tiers_run == {"basic", "agile", "robust"}
