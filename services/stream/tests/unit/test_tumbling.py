"""The tumbling-window engine against a per-sample reference, and its replay after a restart."""

from __future__ import annotations

import itertools
import math
import struct
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import pytest
from aiops_common.schemas import FeatureBatch, MetricKind, SeriesMeta
from aiops_stream.tumbling import (
    STALE_NAN_BITS,
    TumblingWindows,
    WindowConfig,
    _by_group_then_value,
    _by_series_then_time,
    stale_mask,
)

pytestmark = pytest.mark.unit

STALE = struct.unpack("<d", struct.pack("<Q", STALE_NAN_BITS))[0]
Message = tuple[list[int], list[int], list[float]]  # series index, ts, value


def rows_of(batch: FeatureBatch | None) -> dict[tuple[str, int, int], dict[str, float]]:
    if batch is None:
        return {}
    return {r.key: dict(r.values) for r in batch.rows()}


def run(engine: TumblingWindows, metas: list[SeriesMeta], messages: list[Message], first_offset: int = 0) -> dict:
    ids = engine.series_ids(metas)
    out: dict[tuple[str, int, int], dict[str, float]] = {}
    for offset, (s, t, v) in enumerate(messages, start=first_offset):
        engine.add(offset, ids[np.asarray(s, dtype=np.int64)], np.asarray(t, np.int64), np.asarray(v, np.float64))
        got = rows_of(engine.advance())
        assert not set(got) & set(out), "a row was emitted twice"
        out.update(got)
    return out


@dataclass
class Reference:
    """A per-sample restatement of the engine's documented semantics."""

    config: WindowConfig
    counters: set[int]
    deltas: set[int]
    keys: list[str]
    max_ts: int | None = None
    marks: dict[int, int | None] = field(default_factory=dict)
    accepted: dict[int, list[tuple[int, int, float]]] = field(default_factory=lambda: defaultdict(list))
    received: list[tuple[int, int, float]] = field(default_factory=list)

    def feed(self, messages: list[Message]) -> dict:
        out = {}
        for s, t, v in messages:
            for sample in zip(s, t, v, strict=True):
                self.received.append(sample)
                for length in self.config.lengths_ms:
                    mark = self.marks.get(length)
                    if mark is None or sample[1] >= mark:
                        self.accepted[length].append(sample)
            self.max_ts = max(t) if self.max_ts is None else max(self.max_ts, *t)
            out.update(self.close())
        return out

    def latest_before(self, series: int, end: int, real: bool) -> tuple[int, float] | None:
        best: tuple[int, float] | None = None
        for s, t, v in self.received:
            if s != series or t >= end or (real and math.isnan(v)):
                continue
            if best is None or t >= best[0]:
                best = (t, v)
        return best

    def close(self) -> dict:
        assert self.max_ts is not None
        wm = self.max_ts - self.config.allowed_lateness_ms
        out = {}
        for length in self.config.lengths_ms:
            old = self.marks.get(length)
            new = wm // length * length
            if old is not None and new <= old:
                continue
            closing = [x for x in self.accepted[length] if x[1] < new and (old is None or x[1] >= old)]
            groups: dict[tuple[int, int], dict[int, float]] = defaultdict(dict)
            for s, t, v in closing:
                if not math.isnan(v):
                    groups[(t // length * length, s)][t] = v  # a later delivery of the same ts replaces
            first = old if old is not None else (min(x[1] for x in closing) // length * length if closing else new)
            recent = max(first, new - self.config.lookback_ms)
            starts = set(range(recent - recent % length, new, length)) | {w for w, _ in groups}
            for start in sorted(starts):
                end = start + length
                for series in range(len(self.keys)):
                    key = (self.keys[series], start, length)
                    if (start, series) in groups:
                        out[key] = self.stats(series, start, length, groups[(start, series)])
                        continue
                    base = self.latest_before(series, end, real=True)
                    if base is None or base[0] < end - self.config.lookback_ms:
                        continue
                    prev = self.latest_before(series, end, real=False)
                    assert prev is not None
                    ended = stale_mask(np.array([prev[1]]))[0] and prev[0] > base[0]
                    if ended or base[0] < end - self.config.absent_after_ms:
                        out[key] = {"absent": 1.0, "count": 0.0}
            self.marks[length] = new
        return out

    def stats(self, series: int, start: int, length: int, by_ts: dict[int, float]) -> dict[str, float]:
        ts = sorted(by_ts)
        vals = np.array([by_ts[t] for t in ts])
        row = {
            "count": float(vals.size),
            "sum": float(vals.sum()),
            "mean": float(vals.mean()),
            "min": float(vals.min()),
            "max": float(vals.max()),
            "stddev": float(vals.std()),
            "p50": float(np.quantile(vals, 0.5)),
            "p95": float(np.quantile(vals, 0.95)),
            "p99": float(np.quantile(vals, 0.99)),
            "last": float(vals[-1]),
            "absent": 0.0,
        }
        seconds = length / 1000
        if series in self.counters:
            base = self.latest_before(series, start, real=True)
            chain = list(vals)
            if base is not None and base[0] >= start - self.config.lookback_ms:
                chain.insert(0, base[1])
            steps = [b - a if b >= a else b for a, b in itertools.pairwise(chain)]
            row["increase"] = float(sum(steps)) if steps else math.nan
            row["rate"] = row["increase"] / seconds
            row["value"] = row["rate"]
        elif series in self.deltas:
            row["increase"] = row["sum"]
            row["rate"] = row["sum"] / seconds
            row["value"] = row["rate"]
        else:
            row["value"] = row["mean"]
        return row


def assert_rows_match(got: dict, want: dict) -> None:
    assert set(got) == set(want), (sorted(set(got) - set(want))[:5], sorted(set(want) - set(got))[:5])
    for key, expected in want.items():
        for column, value in expected.items():
            actual = got[key][column]
            if math.isnan(value):
                assert math.isnan(actual), (key, column, actual)
            else:
                assert actual == pytest.approx(value, rel=1e-9, abs=1e-9), (key, column, actual, value)


def random_stream(seed: int, n_series: int = 6, n_messages: int = 120) -> tuple[list[SeriesMeta], list[Message]]:
    rng = np.random.default_rng(seed)
    kinds = [MetricKind.GAUGE, MetricKind.COUNTER, MetricKind.DELTA]
    metas = [SeriesMeta(f"m{i}", {"i": str(i)}, kinds[i % 3]) for i in range(n_series)]
    counter_value = np.zeros(n_series)
    messages: list[Message] = []
    clock = 100_000
    for _ in range(n_messages):
        clock += int(rng.integers(0, 1500))
        size = int(rng.integers(1, 12))
        s = rng.integers(0, n_series - 1, size)  # the last series goes silent after the first messages
        t = clock - rng.integers(0, 9000, size)  # out of order, some beyond the allowed lateness
        v = []
        for series in s.tolist():
            if metas[series].kind is MetricKind.COUNTER:
                counter_value[series] = 0 if rng.random() < 0.05 else counter_value[series] + rng.integers(0, 5)
                v.append(float(counter_value[series]))
            else:
                v.append(float(rng.normal(10, 3)) if rng.random() > 0.03 else STALE)
        messages.append((s.tolist(), t.tolist(), v))
    # The last series speaks once, early, then goes silent.
    messages[0][0].append(n_series - 1)
    messages[0][1].append(max(messages[0][1]))
    messages[0][2].append(1.0)
    # Exact duplicates, as an at-least-once producer would deliver them.
    messages.insert(40, messages[39])
    return metas, messages


CONFIG = WindowConfig((10_000, 60_000), allowed_lateness_ms=3_000, absent_after_ms=20_000, lookback_ms=120_000)


@pytest.mark.parametrize("seed", range(8))
def test_engine_matches_the_per_sample_reference(seed: int) -> None:
    metas, messages = random_stream(seed)
    got = run(TumblingWindows(CONFIG), metas, messages)
    ref = Reference(
        CONFIG,
        counters={i for i, m in enumerate(metas) if m.kind is MetricKind.COUNTER},
        deltas={i for i, m in enumerate(metas) if m.kind is MetricKind.DELTA},
        keys=[m.key for m in metas],
    )
    want = ref.feed(messages)
    assert any(r["absent"] == 1.0 for r in want.values())
    assert any(not math.isnan(r.get("increase", math.nan)) for r in want.values())
    assert_rows_match(got, want)


@pytest.mark.parametrize("seed", range(6))
def test_restore_and_replay_reproduces_every_later_row(seed: int) -> None:
    metas, messages = random_stream(seed, n_messages=150)
    whole = TumblingWindows(CONFIG)
    ids = whole.series_ids(metas)
    emitted: list[dict] = []
    checkpoints: list[tuple[int, dict]] = []
    for offset, (s, t, v) in enumerate(messages):
        whole.add(offset, ids[np.asarray(s)], np.asarray(t, np.int64), np.asarray(v))
        batch = whole.advance()
        emitted.append(rows_of(batch))
        if batch is not None:
            checkpoints.append((offset, whole.checkpoint()))
    offset, state = checkpoints[len(checkpoints) // 2]
    assert state["replay_from"] <= offset

    restarted = TumblingWindows(CONFIG)
    restarted.restore(state)
    assert restarted.replay_from == state["replay_from"]
    # The crash came some messages after the checkpoint: the restarted engine reads again from replay_from.
    again = run(restarted, metas, messages[state["replay_from"] :], first_offset=state["replay_from"])
    later = {k: v for rows in emitted[offset + 1 :] for k, v in rows.items()}
    assert later
    assert_rows_match(again, later)


def test_counter_reset_and_rate() -> None:
    w = TumblingWindows(WindowConfig((10_000,), allowed_lateness_ms=0))
    ids = w.series_ids([SeriesMeta("requests_total", {}, MetricKind.COUNTER)])
    w.add(0, ids[[0, 0, 0]], np.array([1_000, 4_000, 7_000]), np.array([100.0, 110.0, 130.0]))
    first = rows_of(w.advance())
    w.add(1, ids[[0, 0, 0]], np.array([12_000, 15_000, 18_000]), np.array([140.0, 5.0, 20.0]))
    w.add(2, ids[[0]], np.array([20_000]), np.array([25.0]))
    second = rows_of(w.advance())
    assert first == {}
    row = second[("requests_total{}", 10_000, 10_000)]
    # 130 -> 140 (+10), reset to 5 (+5), 5 -> 20 (+15)
    assert row["increase"] == 30.0
    assert row["rate"] == 3.0
    assert row["value"] == 3.0
    assert row["last"] == 20.0


def test_stale_marker_makes_the_series_absent_in_the_next_window() -> None:
    w = TumblingWindows(WindowConfig((10_000,), allowed_lateness_ms=0, absent_after_ms=60_000))
    ids = w.series_ids([SeriesMeta("up", {"job": "a"}), SeriesMeta("up", {"job": "b"})])
    w.add(0, ids[[0, 0, 1]], np.array([1_000, 5_000, 1_000]), np.array([1.0, STALE, 1.0]))
    w.add(1, ids[[1]], np.array([21_000]), np.array([1.0]))
    rows = rows_of(w.advance())
    assert rows[('up{job="a"}', 0, 10_000)]["count"] == 1.0
    assert rows[('up{job="a"}', 10_000, 10_000)]["absent"] == 1.0
    assert math.isnan(rows[('up{job="a"}', 10_000, 10_000)]["mean"])
    # b is only quiet for one window, far less than absent_after: no row at all for its gap.
    assert ('up{job="b"}', 10_000, 10_000) not in rows


def test_late_samples_are_dropped_and_counted() -> None:
    w = TumblingWindows(WindowConfig((10_000,), allowed_lateness_ms=2_000))
    ids = w.series_ids([SeriesMeta("x", {})])
    w.add(0, ids[[0]], np.array([1_000]), np.array([1.0]))
    w.add(1, ids[[0]], np.array([12_500]), np.array([2.0]))
    rows = rows_of(w.advance())
    w.add(2, ids[[0]], np.array([9_000]), np.array([50.0]))  # its window closed when the watermark passed 10 s
    assert rows[("x{}", 0, 10_000)]["sum"] == 1.0
    assert w.dropped_late == 1


def test_emit_empty_gives_zero_rows_for_quiet_counts() -> None:
    w = TumblingWindows(WindowConfig((10_000,), allowed_lateness_ms=0, emit_empty=True))
    ids = w.series_ids([SeriesMeta("red.request_rate", {"service": "a"}, MetricKind.DELTA)])
    w.add(0, ids[[0, 0]], np.array([1_000, 2_000]), np.array([1.0, 1.0]))
    w.add(1, ids[[0]], np.array([30_000]), np.array([1.0]))
    rows = rows_of(w.advance())
    assert rows[('red.request_rate{service="a"}', 0, 10_000)]["value"] == 0.2
    quiet = rows[('red.request_rate{service="a"}', 10_000, 10_000)]
    assert (quiet["value"], quiet["count"], quiet["absent"]) == (0.0, 0.0, 0.0)


def test_idle_closes_the_last_windows_and_repeating_it_closes_nothing_more() -> None:
    config = WindowConfig((10_000, 60_000), allowed_lateness_ms=2_000, absent_after_ms=10_000)
    w = TumblingWindows(config)
    ids = w.series_ids([SeriesMeta("cpu", {})])
    w.add(0, ids[[0, 0, 0]], np.array([1_000, 11_000, 14_000]), np.array([1.0, 2.0, 4.0]))
    assert set(rows_of(w.advance())) == {("cpu{}", 0, 10_000)}
    before = w.checkpoint()
    assert w.idle(7_000) is None  # watermark 19 s: [10, 20) still open
    assert w.checkpoint() == before  # nothing closed, nothing changed

    closed = rows_of(w.idle(8_000))  # watermark 20 s
    assert closed[("cpu{}", 10_000, 10_000)]["mean"] == 3.0
    assert w.idle(8_000) is None
    # Quiet for longer: the next windows close empty, the series is absent, the minute closes.
    later = rows_of(w.idle(48_000))
    assert later[("cpu{}", 20_000, 10_000)]["absent"] == 1.0
    assert later[("cpu{}", 0, 60_000)]["count"] == 3.0
    assert w.watermark == 60_000


def test_idle_then_restore_replays_to_the_same_rows() -> None:
    config = WindowConfig((10_000,), allowed_lateness_ms=2_000, absent_after_ms=10_000)
    metas = [SeriesMeta("cpu", {}), SeriesMeta("requests_total", {}, MetricKind.COUNTER)]
    messages: list[Message] = [([0, 1], [1_000, 1_000], [1.0, 10.0]), ([0, 1], [13_000, 13_000], [3.0, 15.0])]
    whole = TumblingWindows(config)
    run(whole, metas, messages)
    flushed = rows_of(whole.idle(9_000))
    assert flushed[("requests_total{}", 10_000, 10_000)]["increase"] == 5.0
    state = whole.checkpoint()
    # A late sample after the flush is dropped, in the uninterrupted engine and in the restored one alike.
    late: Message = ([0], [18_000], [100.0])
    after = run(whole, metas, [late, ([0], [40_000], [7.0])], first_offset=2)

    restarted = TumblingWindows(config)
    restarted.restore(state)
    assert restarted.dropped_late == 0
    again = run(restarted, metas, [*messages, late, ([0], [40_000], [7.0])])
    assert restarted.dropped_late == whole.dropped_late == 1  # the replayed messages are not counted again
    assert after
    assert_rows_match(again, after)


def test_a_forgotten_series_that_returns_as_the_same_object_is_windowed_again() -> None:
    # A decoder hands out the same SeriesMeta object for a series batch after batch.
    a, b = SeriesMeta("a", {"i": "1"}), SeriesMeta("b", {"i": "2"})

    def feed(engine: TumblingWindows, b_returns_as: SeriesMeta) -> dict[tuple[str, int, int], dict[str, float]]:
        out: dict[tuple[str, int, int], dict[str, float]] = {}
        for offset, t in enumerate(range(100_000, 700_000, 5_000)):
            metas = [a, b] if t == 100_000 else [a, b_returns_as] if t == 600_000 else [a]
            ids = engine.series_ids(metas)
            n = len(metas)
            engine.add(offset, ids, np.full(n, t, dtype=np.int64), np.arange(n, dtype=np.float64) + 1.0)
            out.update(rows_of(engine.advance()))
        return out

    config = WindowConfig((10_000,), allowed_lateness_ms=0, absent_after_ms=20_000, lookback_ms=120_000)
    same_object = feed(TumblingWindows(config), b)
    b_rows = sorted(start for key, start, _ in same_object if key == b.key)
    assert 100_000 in b_rows and 600_000 in b_rows  # windowed before it was forgotten, and again after
    assert not any(300_000 <= start < 600_000 for start in b_rows)  # forgotten: no absent rows meanwhile
    # Exactly what a fresh (equal) object for the returning series gives.
    fresh_object = feed(TumblingWindows(config), SeriesMeta("b", {"i": "2"}))
    assert same_object.keys() == fresh_object.keys()
    assert_rows_match(same_object, fresh_object)


def test_a_forgotten_series_in_a_table_sent_unchanged_is_windowed_again() -> None:
    # The producer sends the same series table (same objects, same order) every time; ids come from the last lookup.
    a, b = SeriesMeta("a", {"i": "1"}), SeriesMeta("b", {"i": "2"}, MetricKind.COUNTER)

    def feed(engine: TumblingWindows, b_returns_as: SeriesMeta) -> dict[tuple[str, int, int], dict[str, float]]:
        out: dict[tuple[str, int, int], dict[str, float]] = {}
        table = [a, b]
        for offset, t in enumerate(range(100_000, 700_000, 5_000)):
            if t == 600_000:
                table = [a, b_returns_as]
            ids = engine.series_ids(table)
            sampled = [0, 1] if t in (100_000, 600_000) else [0]
            n = len(sampled)
            engine.add(offset, ids[sampled], np.full(n, t, dtype=np.int64), np.arange(n, dtype=np.float64) + 1.0)
            out.update(rows_of(engine.advance()))
        return out

    config = WindowConfig((10_000,), allowed_lateness_ms=0, absent_after_ms=20_000, lookback_ms=120_000)
    same_object = feed(TumblingWindows(config), b)
    b_rows = sorted(start for key, start, _ in same_object if key == b.key)
    assert 100_000 in b_rows and 600_000 in b_rows
    assert not any(300_000 <= start < 600_000 for start in b_rows)
    assert any(start > 600_000 for start in b_rows)  # known again: absent rows after it went quiet again
    fresh_object = feed(TumblingWindows(config), SeriesMeta("b", {"i": "2"}, MetricKind.COUNTER))
    assert same_object.keys() == fresh_object.keys()
    assert_rows_match(same_object, fresh_object)


@pytest.mark.parametrize("seed", range(4))
def test_the_window_sorts_order_like_lexsort(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 5_000
    sid = np.tile(np.arange(n // 10, dtype=np.int64), 10)  # series order, chunk after chunk, as messages come
    ts = np.repeat(np.arange(10, dtype=np.int64) * 10_000, n // 10) + rng.integers(0, 2_000, n)
    val = np.round(rng.normal(0, 3, n))  # many ties
    val[rng.integers(0, n, 50)] = np.inf
    val[rng.integers(0, n, 50)] = -np.inf
    assert (_by_series_then_time(sid, ts) == np.lexsort((ts, sid))).all()
    skewed = np.where(rng.random(n) < 0.5, 0, sid)  # one huge group: padding would be too wide
    for g in (sid, sid + ts // 60_000 * n, ts // 10_000 * n + sid, skewed):
        order = _by_group_then_value(g, val)
        want = np.lexsort((val, g))
        assert (g[order] == g[want]).all()
        assert (val[order] == val[want]).all()


def test_a_series_keeps_its_id_whatever_table_or_object_it_comes_in() -> None:
    metas = [SeriesMeta("m", {"i": str(i), "j": "x"}) for i in range(50)]
    w = TumblingWindows(CONFIG)
    first = w.series_ids(metas).tolist()
    assert w.series_ids(metas).tolist() == first  # the same table again
    shuffled = list(reversed(metas[10:]))
    assert w.series_ids(shuffled).tolist() == [first[metas.index(m)] for m in shuffled]
    # Equal series as other objects, labels in another order: found by label order, then by key.
    again = [SeriesMeta("m", {"j": "x", "i": str(i)}) for i in range(60)]
    got = w.series_ids(again).tolist()
    assert got[:50] == first
    assert sorted(set(got[50:])) == list(range(50, 60))
    assert w.series_ids(again).tolist() == got
