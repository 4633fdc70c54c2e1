"""History sent for a new series to a partition whose clock is at now: windowed by the series' own clock."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
import structlog
from aiops_common.schemas import FeatureBatch, MetricKind, SeriesMeta
from aiops_stream.drops import DROPPED_SAMPLES, DropReason, count_dropped
from aiops_stream.series_clocks import SeriesClocks
from aiops_stream.tumbling import TumblingWindows, WindowConfig
from prometheus_client import REGISTRY

pytestmark = pytest.mark.unit

CONFIG = WindowConfig((10_000, 60_000), allowed_lateness_ms=2_000, absent_after_ms=30_000, lookback_ms=120_000)
NOW = 1_800_000_000_000
LIVE = SeriesMeta("host_cpu", {"host": "a"})
OLD = SeriesMeta("replayed_total", {"service": "web"}, MetricKind.COUNTER)
Rows = dict[tuple[str, int, int], dict[str, float]]
Message = tuple[SeriesMeta, list[int], list[float]]


def rows_of(batch: FeatureBatch | None) -> Rows:
    return {} if batch is None else {r.key: dict(r.values) for r in batch.rows()}


def feed(engine: SeriesClocks | TumblingWindows, messages: list[Message], first_offset: int = 0) -> Rows:
    out: Rows = {}
    for offset, (meta, ts, values) in enumerate(messages, start=first_offset):
        ids = engine.series_ids([meta])
        engine.add(offset, np.repeat(ids, len(ts)), np.asarray(ts, np.int64), np.asarray(values, np.float64))
        got = rows_of(engine.advance())
        assert not set(got) & set(out), "a row was emitted twice"
        out.update(got)
    return out


def dropped(reason: str, stage: str = "metrics") -> float:
    return REGISTRY.get_sample_value("aiops_stream_dropped_samples_total", {"stage": stage, "reason": reason}) or 0.0


def live(start_s: int, n: int) -> list[Message]:
    """One host sample every 5 s from ``NOW + start_s``."""
    return [(LIVE, [NOW + (start_s + 5 * i) * 1000], [float(i % 7)]) for i in range(n)]


def history(start_ms: int, n: int, per_message: int) -> list[Message]:
    """A counter every 15 s from ``start_ms``, ``per_message`` samples per message."""
    ts = [start_ms + 15_000 * i for i in range(n)]
    values = [float(10 * i) for i in range(n)]
    values[n // 2 :] = [v - values[n // 2] + 3 for v in values[n // 2 :]]  # a counter reset mid-way
    return [(OLD, ts[i : i + per_message], values[i : i + per_message]) for i in range(0, n, per_message)]


def interleave(a: list[Message], b: list[Message]) -> list[Message]:
    out: list[Message] = []
    for i in range(max(len(a), len(b))):
        out.extend(a[i : i + 1] + b[i : i + 1])
    return out


def alone(messages: list[Message]) -> Rows:
    """What the history gives on a partition of its own, then quiet for twice the lookback."""
    engine = TumblingWindows(CONFIG, "metrics")
    out = feed(engine, messages)
    for quiet_ms in range(0, 2 * CONFIG.lookback_ms, 5_000):  # the idle timer's steps
        out.update(rows_of(engine.idle(quiet_ms)))
    return out


def test_history_of_a_new_series_is_windowed_by_its_own_clock_while_the_partition_is_at_now() -> None:
    two_weeks_ago = NOW - 14 * 86_400_000
    past = history(two_weeks_ago, 200, per_message=40)
    engine = SeriesClocks(CONFIG, "metrics", max_clocks=10)
    before = feed(engine, live(0, 20))
    assert before and engine.watermark is not None and engine.watermark > NOW
    # The history arrives while the host keeps reporting; then the host goes on for the lookback.
    during = feed(engine, interleave(past, live(100, len(past))), first_offset=20)
    after = feed(engine, live(100 + 5 * len(past), 40), first_offset=20 + 2 * len(past))
    assert not engine.clocks  # quiet for the lookback: handed back to the partition's engine

    got = {k: v for k, v in {**during, **after}.items() if k[0] == OLD.key}
    want = alone(past)
    assert got.keys() == want.keys()
    for key, row in want.items():
        assert got[key] == pytest.approx(row, nan_ok=True), key
    assert sum(r["count"] for k, r in want.items() if k[2] == 10_000) == 200
    assert engine.dropped_late == 0
    # The host's windows went on meanwhile, one row per window.
    host = sorted(k[1] for k in {**before, **during, **after} if k[0] == LIVE.key and k[2] == 10_000)
    assert host == list(range(host[0], host[-1] + 1, 10_000))


def test_late_samples_of_a_live_series_are_dropped_and_counted_by_reason() -> None:
    engine = SeriesClocks(CONFIG, "metrics", max_clocks=10)
    feed(engine, live(0, 20))
    before = dropped("late")
    # The host series has windows closed up to now: an old sample of it is late, not history of its own.
    feed(engine, [(LIVE, [NOW - 60_000, NOW - 50_000], [1.0, 2.0])], first_offset=20)
    assert not engine.clocks
    assert engine.dropped_late == 2
    assert dropped("late") - before == 2


def test_past_the_clock_limit_history_is_dropped_and_counted() -> None:
    other = SeriesMeta("replayed_gauge", {"service": "web"})
    engine = SeriesClocks(CONFIG, "metrics", max_clocks=1)
    feed(engine, live(0, 20))
    before = dropped("series_clock_limit")
    got = feed(engine, [(OLD, [NOW - 86_400_000], [1.0]), (other, [NOW - 86_400_000], [2.0])], first_offset=20)
    assert list(engine.clock_of) == [OLD.key]
    got.update(rows_of(engine.idle(CONFIG.lookback_ms)))
    assert other.key not in {k[0] for k in got} and OLD.key in {k[0] for k in got}
    assert engine.dropped_clock_limit == 1 and dropped("series_clock_limit") - before == 1


def test_history_that_reaches_now_and_goes_on_live_keeps_one_row_per_window() -> None:
    engine = SeriesClocks(CONFIG, "metrics", max_clocks=10)
    feed(engine, live(0, 30))
    # Replayed up to the partition's time, then reporting every 5 s with the host.
    past = history(NOW - 3_600_000, 3_600 // 15 + 10, per_message=50)
    going_on = [(OLD, [NOW + (150 + 5 * i) * 1000], [5_000.0 + i]) for i in range(60)]
    got = feed(engine, [*past, *interleave(going_on, live(150, 60))], first_offset=30)
    # Every window once, no gap: minutes all along (a sample every 15 s), 10 s windows once it reports every 5 s.
    minutes = sorted(k[1] for k in got if k[0] == OLD.key and k[2] == 60_000)
    assert minutes == list(range(minutes[0], minutes[-1] + 1, 60_000)) and minutes[-1] >= NOW + 180_000
    tens = sorted(k[1] for k in got if k[0] == OLD.key and k[2] == 10_000 and k[1] >= NOW + 150_000)
    assert tens == list(range(NOW + 150_000, tens[-1] + 1, 10_000)) and len(tens) >= 25
    assert engine.dropped_late == 0


def test_a_restart_mid_backfill_replays_to_the_same_rows() -> None:
    past = history(NOW - 86_400_000, 300, per_message=30)
    messages = [*live(0, 20), *interleave(past, live(100, len(past))), *live(100 + 5 * len(past), 40)]
    whole = SeriesClocks(CONFIG, "metrics", max_clocks=10)
    emitted: list[Rows] = []
    checkpoints: list[tuple[int, dict[str, object]]] = []
    for offset, message in enumerate(messages):
        emitted.append(feed(whole, [message], first_offset=offset))
        if emitted[-1]:
            checkpoints.append((offset, whole.checkpoint()))
    # Checkpoints taken while the history's clock was open, and the last one after the hand-over.
    mid = [(o, s) for o, s in checkpoints if s.get("clocks")]
    assert mid and not checkpoints[-1][1].get("clocks")
    for offset, state in (mid[len(mid) // 2], mid[-1]):
        restarted = SeriesClocks(CONFIG, "metrics", max_clocks=10)
        restarted.restore(state)
        start = restarted.replay_from
        assert start <= offset
        again = feed(restarted, messages[start:], first_offset=start)
        later = {k: v for rows in emitted[offset + 1 :] for k, v in rows.items()}
        assert later and again.keys() == later.keys()
        for key, row in later.items():
            assert again[key] == pytest.approx(row, nan_ok=True), key


def test_the_counter_is_in_the_default_registry() -> None:
    assert DROPPED_SAMPLES._name == "aiops_stream_dropped_samples"  # prometheus_client drops the _total suffix
    assert any(m.name == "aiops_stream_dropped_samples" for m in REGISTRY.collect())


def test_series_that_start_their_history_together_share_one_clock() -> None:
    metas = [SeriesMeta("column", {"i": str(i)}, MetricKind.COUNTER if i % 2 else MetricKind.GAUGE) for i in range(20)]
    start = NOW - 7 * 86_400_000
    # A CSV of 20 columns replayed in time order: every message holds every series.
    messages = []
    for m in range(10):
        ts = np.repeat(start + (np.arange(40) + 40 * m) * 15_000, len(metas))
        sid = np.tile(np.arange(len(metas)), 40)
        messages.append((sid, ts, (ts % 97).astype(np.float64) + sid))
    engine = SeriesClocks(CONFIG, "metrics", max_clocks=100)
    feed(engine, live(0, 20))
    reference = TumblingWindows(CONFIG, "metrics")
    got: Rows = {}
    want: Rows = {}
    for offset, (sid, ts, values) in enumerate(messages, start=20):
        ids = engine.series_ids(metas)
        engine.add(offset, ids[sid], ts, values)
        got.update(rows_of(engine.advance()))
        assert len(engine.clocks) == 1
        reference.add(offset, reference.series_ids(metas)[sid], ts, values)
        want.update(rows_of(reference.advance()))
    for quiet_ms in range(0, 2 * CONFIG.lookback_ms, 5_000):
        want.update(rows_of(reference.idle(quiet_ms)))
    got.update(feed(engine, live(100, 40), first_offset=30))
    assert not engine.clocks
    got = {k: v for k, v in got.items() if k[0] != LIVE.key}
    assert got.keys() == want.keys() and len(got) > 1000
    for key, row in want.items():
        assert got[key] == pytest.approx(row, nan_ok=True), key


def test_drops_are_counted_each_and_logged_once_per_stage_and_reason_at_a_bounded_rate() -> None:
    stage = f"test-{uuid.uuid4().hex[:8]}"  # the process' limiter and counter are shared: a stage of its own
    with structlog.testing.capture_logs() as logs:
        count_dropped(stage, DropReason.LATE, 300, partition=3)
        count_dropped(stage, DropReason.LATE, 20, partition=3)  # within 10 s of the first line: held back
        count_dropped(stage, DropReason.CLOCK_LIMIT, 5, partition=3)
    assert DROPPED_SAMPLES.labels(stage, "late")._value.get() == 320
    assert [(line["event"], line["reason"], line["samples"], line["since_s"], line["partition"]) for line in logs] == [
        ("samples dropped", "late", 300, None, 3),
        ("samples dropped", "series_clock_limit", 5, None, 3),
    ]
