"""Dynamic-X-Y: quiet keys raise at once, flapping is held back but bursts raise, and the state replays exactly."""

from __future__ import annotations

import doctest
import math
import random
import re
from collections.abc import Iterable
from itertools import pairwise

import msgpack
import pytest
from aiops_correlation.policy import dynamic_xy
from aiops_correlation.policy.dynamic_xy import (
    Basis,
    DxyConfig,
    DynamicXY,
    Verdict,
    learn,
    poisson_threshold,
)

pytestmark = pytest.mark.unit

T0 = 1_800_000_000_000
MIN = 60_000
HOUR = 3_600_000
DAY = 86_400_000


def flapping(start: int, end: int, rng: random.Random, low: int = 2 * MIN, high: int = 4 * MIN) -> list[int]:
    """Event times every ``low``..``high`` ms (uniform jitter) in ``(start, end)``."""
    times: list[int] = []
    t = start
    while True:
        t += rng.randint(low, high)
        if t >= end:
            return times
        times.append(t)


def feed(dxy: DynamicXY, key: str, times: Iterable[int]) -> list[Verdict]:
    return [dxy.observe(key, t) for t in times]


def window_counts(times: list[int], y_ms: int) -> list[int]:
    """For each event, the events in ``(t - y_ms, t]``: what a key's own history shows per Y."""
    ordered = sorted(times)
    counts, lo = [], 0
    for hi, t in enumerate(ordered):
        while ordered[lo] <= t - y_ms:
            lo += 1
        counts.append(hi - lo + 1)
    return counts


def test_a_key_without_history_raises_at_its_first_event() -> None:
    dxy = DynamicXY()
    verdict = dxy.observe("alert:DiskFull:db:db-0", T0)
    assert verdict == Verdict(
        raised=True,
        x=1,
        y_ms=300_000,
        count=1,
        learned=False,
        reason="1 event in 5 min >= X=1 (default: 1 event of history, 12 needed to learn)",
    )
    assert dxy.parameters("alert:DiskFull:db:db-0") == (1, 300_000, False)
    assert dxy.parameters("never:seen") == (1, 300_000, False)
    assert dxy.held_back() == 0


def test_a_quiet_history_is_learned_and_every_event_still_raises() -> None:
    dxy = DynamicXY()
    twice_a_day = [T0 + i * 12 * HOUR + (i * 7919) % HOUR for i in range(14)]
    verdicts = feed(dxy, "alert:BackupLate:db:db-0", twice_a_day)
    assert all(v.raised and v.x == 1 and v.count == 1 for v in verdicts)
    assert dxy.parameters("alert:BackupLate:db:db-0") == (1, 300_000, True)
    assert verdicts[-1].learned
    assert verdicts[-1].reason == (
        "1 event in 5 min >= X=1 learned from 14 events "
        "(not flapping: persistent regions cover 0% of the recent history)"
    )


def test_past_incidents_do_not_make_the_next_one_wait() -> None:
    """Episodes of a real fault (ten events in 20 min, every other day) are persistent but rare: not flapping."""
    rng = random.Random(3)
    dxy = DynamicXY()
    for day in range(0, 8, 2):
        start = T0 + day * DAY + rng.randint(0, 12 * HOUR)
        verdicts = feed(dxy, "alert:HighLatency:checkout:pod-1", [start + i * 2 * MIN for i in range(10)])
        assert verdicts[0].raised, verdicts[0].reason
        assert all(v.raised for v in verdicts)
    assert dxy.parameters("alert:HighLatency:checkout:pod-1") == (1, 300_000, True)
    assert dxy.held_back() == 0


def test_flapping_is_held_back_yet_a_burst_well_above_it_raises() -> None:
    rng = random.Random(7)
    dxy = DynamicXY()
    key = "alert:KubePodCrashLooping:batch:pod-7"
    times = flapping(T0, T0 + 3 * DAY, rng)
    verdicts = feed(dxy, key, times)

    # Until its history shows persistence, the key raises like any other (X=1); then it is learned flapping.
    learned_at = next(i for i, v in enumerate(verdicts) if v.x > 1)
    assert times[learned_at] - T0 <= 3 * HOUR
    after = verdicts[learned_at:]
    assert not any(v.raised for v in after), [v.reason for v in after if v.raised][:3]
    assert dxy.held_back() == sum(not v.raised for v in verdicts)

    x, y_ms, learned = dxy.parameters(key)
    assert learned and y_ms == 15 * MIN
    usual_max = max(window_counts(times, y_ms))
    assert usual_max < x <= 3 * usual_max  # above the usual flapping, not so far above that bursts wait long
    assert re.fullmatch(
        rf"\d+ events in 15 min < X={x} learned from 1024 events \(flapping: usually \d\.\d per 15 min\)",
        verdicts[-1].reason,
    )

    # A real burst: one event every 15 s, four times as dense as the usual flapping at its densest.
    burst = feed(dxy, key, [times[-1] + (i + 1) * 15_000 for i in range(40)])
    first = next(i for i, v in enumerate(burst) if v.raised)
    assert first < x
    assert all(v.raised for v in burst[first:])
    assert burst[first].count >= x
    assert burst[first].reason.startswith(f"{burst[first].count} events in 15 min >= X={x} learned from")


def test_other_keys_are_not_affected_by_a_flapping_one() -> None:
    rng = random.Random(8)
    dxy = DynamicXY()
    feed(dxy, "alert:Flappy:a:pod-1", flapping(T0, T0 + DAY, rng))
    verdict = dxy.observe("alert:Flappy:a:pod-2", T0 + DAY)
    assert verdict.raised and verdict.x == 1 and not verdict.learned


def test_relearning_follows_a_key_that_starts_flapping() -> None:
    rng = random.Random(11)
    dxy = DynamicXY()
    key = "alert:QueueBacklog:orders:pod-0"
    quiet = [T0 + i * 12 * HOUR for i in range(7)]
    feed(dxy, key, quiet)
    assert dxy.parameters(key) == (1, 300_000, False)  # 7 events: too few to learn
    start = quiet[-1] + 12 * HOUR
    times = flapping(start, start + 12 * HOUR, rng)
    verdicts = feed(dxy, key, times)
    assert verdicts[0].raised and verdicts[0].x == 1
    # Persistent regions must cover a quarter of its last day (6 h), then the next hourly relearn sees it.
    early = [v for t, v in zip(times, verdicts, strict=True) if t < start + 5 * HOUR]
    assert all(v.raised for v in early)
    late = [v for t, v in zip(times, verdicts, strict=True) if t >= start + 7 * HOUR]
    assert late and not any(v.raised for v in late)
    assert dxy.parameters(key)[2]


def test_relearning_follows_a_key_that_stops_flapping() -> None:
    rng = random.Random(12)
    dxy = DynamicXY()
    key = "alert:Flappy:search:pod-3"
    times = flapping(T0, T0 + 2 * DAY, rng)
    feed(dxy, key, times)
    x, _, learned = dxy.parameters(key)
    assert learned and x > 1
    # Quiet for 30 h: the last day of its history holds no persistent region, so X falls back to 1.
    verdict = dxy.observe(key, times[-1] + 30 * HOUR)
    assert verdict.raised and verdict.x == 1 and verdict.learned
    assert "not flapping" in verdict.reason


def test_relearning_follows_a_key_whose_flapping_gets_faster() -> None:
    rng = random.Random(13)
    dxy = DynamicXY()
    key = "alert:Flappy:cache:pod-9"
    slow = flapping(T0, T0 + 2 * DAY, rng)
    feed(dxy, key, slow)
    slow_x = dxy.parameters(key)[0]
    fast = flapping(slow[-1], slow[-1] + DAY, rng, low=15_000, high=25_000)
    verdicts = feed(dxy, key, fast)
    assert verdicts[len(verdicts) // 20].raised  # well above its old rate: a burst
    fast_x, _, learned = dxy.parameters(key)
    assert learned and fast_x > 4 * slow_x
    last_hours = [v for t, v in zip(fast, verdicts, strict=True) if t >= fast[-1] - 6 * HOUR]
    assert not any(v.raised for v in last_hours)  # the new rate is the new normal


def test_parameters_change_only_when_the_key_relearns() -> None:
    rng = random.Random(14)
    dxy = DynamicXY()
    key = "alert:Flappy:web:pod-1"
    times = flapping(T0, T0 + DAY, rng)
    verdicts = feed(dxy, key, times)
    changes = [
        i
        for i in range(1, len(verdicts))
        if (verdicts[i].x, verdicts[i].y_ms) != (verdicts[i - 1].x, verdicts[i - 1].y_ms)
    ]
    assert changes
    for a, b in pairwise(changes):
        assert times[b] - times[a] >= dxy.config.relearn_ms


def test_overrides_by_pattern_are_fixed_and_first_match_wins() -> None:
    config = DxyConfig(overrides=(("alert:Watchdog:*", 3, 10 * MIN), ("alert:*", 1, MIN)))
    dxy = DynamicXY(config)
    watchdog = feed(dxy, "alert:Watchdog:mon:prom-0", [T0, T0 + MIN, T0 + 2 * MIN, T0 + 20 * MIN])
    assert [v.raised for v in watchdog] == [False, False, True, False]
    assert [v.count for v in watchdog] == [1, 2, 3, 1]
    assert not any(v.learned for v in watchdog)
    assert watchdog[0].reason == "1 event in 10 min < X=3 (override alert:Watchdog:*)"
    assert watchdog[2].reason == "3 events in 10 min >= X=3 (override alert:Watchdog:*)"
    assert dxy.parameters("alert:Watchdog:other:prom-1") == (3, 10 * MIN, False)
    assert dxy.parameters("alert:Other:x:y") == (1, MIN, False)
    assert dxy.parameters("anomaly:cpu") == (1, 300_000, False)

    # An override is never relearned, however the key behaves.
    verdicts = feed(dxy, "alert:Chatty:x:y", flapping(T0, T0 + 2 * DAY, random.Random(1)))
    assert all(v.raised and v.x == 1 and v.y_ms == MIN and not v.learned for v in verdicts)


def _mixed_stream(seed: int) -> list[tuple[str, int]]:
    """Several kinds of keys interleaved by time, with a little disorder, as a correlator would see them."""
    rng = random.Random(seed)
    events: list[tuple[int, str]] = []
    for k in range(3):
        events += [(t, f"alert:Flappy:svc:pod-{k}") for t in flapping(T0, T0 + 2 * DAY, rng)]
    events += [(T0 + i * 5 * HOUR, "alert:Quiet:svc:pod-0") for i in range(15)]
    events += [(T0 + i * 20 * MIN, "alert:Watchdog:mon:prom") for i in range(100)]
    burst_at = T0 + DAY + 3 * HOUR
    events += [(burst_at + i * 10_000, "alert:Flappy:svc:pod-1") for i in range(30)]
    events.sort()
    # A little disorder: some events arrive up to three places late.
    for i in range(len(events) - 3):
        if rng.random() < 0.05:
            events[i], events[i + 3] = events[i + 3], events[i]
    return [(key, t) for t, key in events]


CONFIG = DxyConfig(overrides=(("alert:Watchdog:*", 2, 30 * MIN),))


@pytest.mark.parametrize("split", [1, 500, 1500, 2500])
def test_restore_of_a_snapshot_gives_the_verdicts_of_never_snapshotting(split: int) -> None:
    stream = _mixed_stream(21)
    straight = DynamicXY(CONFIG)
    expected = [straight.observe(key, t) for key, t in stream]

    first = DynamicXY(CONFIG)
    for key, t in stream[:split]:
        first.observe(key, t)
    packed = msgpack.packb(first.snapshot())
    restored = DynamicXY.restore(CONFIG, msgpack.unpackb(packed))
    assert restored.snapshot() == first.snapshot()
    got = expected[:split] + [restored.observe(key, t) for key, t in stream[split:]]
    assert got == expected
    assert restored.held_back() == straight.held_back()
    assert restored.snapshot() == straight.snapshot()
    assert any(not v.raised for v in expected) and any(v.raised for v in expected[split:])


def test_a_replay_gives_the_same_verdicts() -> None:
    stream = _mixed_stream(22)
    one, two = DynamicXY(CONFIG), DynamicXY(CONFIG)
    assert [one.observe(k, t) for k, t in stream] == [two.observe(k, t) for k, t in stream]


def test_restore_refuses_a_snapshot_it_cannot_read() -> None:
    with pytest.raises(ValueError, match="version"):
        DynamicXY.restore(CONFIG, {"v": 99, "keys": []})
    snapshot = DynamicXY(CONFIG).snapshot()
    snapshot["keys"] = [["only-a-key"]]
    with pytest.raises(ValueError, match="malformed"):
        DynamicXY.restore(CONFIG, snapshot)


def test_restore_applies_an_override_added_since_the_snapshot() -> None:
    dxy = DynamicXY()
    feed(dxy, "alert:Flappy:a:b", flapping(T0, T0 + DAY, random.Random(2)))
    assert dxy.parameters("alert:Flappy:a:b")[2]
    restored = DynamicXY.restore(DxyConfig(overrides=(("alert:Flappy:*", 1, MIN),)), dxy.snapshot())
    assert restored.parameters("alert:Flappy:a:b") == (1, MIN, False)
    back = DynamicXY.restore(DxyConfig(), restored.snapshot())  # removed again: defaults until relearned
    assert back.parameters("alert:Flappy:a:b") == (1, 300_000, False)


def test_a_late_event_is_counted_in_its_own_window() -> None:
    dxy = DynamicXY(DxyConfig(overrides=(("k", 3, 5 * MIN),)))
    assert dxy.observe("k", T0).count == 1
    assert dxy.observe("k", T0 + 2 * MIN).count == 2
    late = dxy.observe("k", T0 + MIN)  # arrives after T0 + 2 min
    assert late.count == 2 and not late.raised  # T0 and itself: the later event is not in (at - Y, at]
    assert dxy.observe("k", T0 + 3 * MIN).count == 4
    assert dxy.too_old() == 0


def test_slight_disorder_learns_what_order_learns() -> None:
    rng = random.Random(31)
    times = flapping(T0, T0 + 2 * DAY, rng)
    shuffled = list(times)
    for i in range(0, len(shuffled) - 1, 3):  # a third of the events arrive after their successor
        shuffled[i], shuffled[i + 1] = shuffled[i + 1], shuffled[i]
    ordered, disordered = DynamicXY(), DynamicXY()
    feed(ordered, "k", times)
    verdicts = feed(disordered, "k", shuffled)
    assert disordered.parameters("k") == ordered.parameters("k")
    assert disordered.snapshot()["keys"][0][-1] == ordered.snapshot()["keys"][0][-1]  # the same history kept
    assert not any(v.raised for t, v in zip(shuffled, verdicts, strict=True) if t > T0 + DAY)


def test_an_event_older_than_the_history_is_judged_but_not_kept() -> None:
    dxy = DynamicXY(DxyConfig(history_ms=DAY))
    dxy.observe("k", T0 + 2 * DAY)
    verdict = dxy.observe("k", T0)
    assert verdict.raised and verdict.count == 1
    assert dxy.too_old() == 1
    assert dxy.snapshot()["keys"][0][-1] == [T0 + 2 * DAY]


def test_memory_is_bounded_per_key_and_in_keys() -> None:
    dxy = DynamicXY(DxyConfig(max_events=100, max_keys=3, history_ms=DAY))
    feed(dxy, "a", [T0 + i * 10_000 for i in range(1000)])
    assert len(dxy.snapshot()["keys"][0][-1]) == 100
    feed(dxy, "a", [T0 + 3 * DAY])  # the old events fall out of the history
    assert len(dxy.snapshot()["keys"][0][-1]) == 1
    for key in ("b", "c", "d", "e"):
        dxy.observe(key, T0 + 3 * DAY)
    assert len(dxy) == 3 and dxy.evicted() == 2
    assert [entry[0] for entry in dxy.snapshot()["keys"]] == ["c", "d", "e"]


def test_a_burst_larger_than_the_events_kept_still_raises() -> None:
    config = DxyConfig(max_events=50)
    dxy = DynamicXY(config)
    times = flapping(T0, T0 + DAY, random.Random(5), low=5_000, high=7_000)
    feed(dxy, "k", times)
    x, _, learned = dxy.parameters("k")
    assert learned and x <= config.max_events
    burst = feed(dxy, "k", [times[-1] + i * 100 for i in range(1, 200)])
    assert any(v.raised for v in burst)


def test_reasons_name_durations_plainly() -> None:
    dxy = DynamicXY(DxyConfig(overrides=(("s", 2, 90_000), ("h", 2, HOUR), ("ms", 2, 1500))))
    assert dxy.observe("s", T0).reason == "1 event in 90 s < X=2 (override s)"
    assert dxy.observe("h", T0).reason == "1 event in 1 h < X=2 (override h)"
    assert dxy.observe("ms", T0).reason == "1 event in 1500 ms < X=2 (override ms)"


def test_learn_explains_what_it_found() -> None:
    config = DxyConfig()
    times = flapping(T0, T0 + DAY, random.Random(41))
    found = learn(times, times[-1], config)
    assert found.basis == Basis.FLAPPING and found.regions == 1 and found.coverage > 0.99
    assert found.y_ms == config.max_y_ms and 4.0 < found.usual < 6.0
    assert found.x == poisson_threshold(found.usual, config.by_chance)
    # Blips of one or two events are transient, not persistent regions.
    blips = sorted(T0 + i * HOUR + j * MIN for i in range(24) for j in range(2))
    assert learn(blips, blips[-1], config).regions == 0


@pytest.mark.parametrize("usual", [0.3, 1.0, 2.5, 5.0, 12.0, 40.0])
def test_poisson_threshold_is_the_least_count_rare_enough(usual: float) -> None:
    def tail(k: int) -> float:  # P(N >= k)
        return 1.0 - sum(math.exp(-usual) * usual**i / math.factorial(i) for i in range(k))

    k = poisson_threshold(usual, 1e-3)
    assert tail(k) <= 1e-3 < tail(k - 1)


@pytest.mark.parametrize(
    "bad",
    [
        {"relearn_ms": 0},
        {"default_x": 0},
        {"flapping_coverage": 0.0},
        {"by_chance": 1.0},
        {"min_y_ms": 2 * HOUR},
        {"overrides": (("x", 0, MIN),)},
    ],
)
def test_a_bad_config_is_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        DxyConfig(**bad)  # type: ignore[arg-type]


def test_docstring_examples_run() -> None:
    assert doctest.testmod(dynamic_xy).failed == 0
