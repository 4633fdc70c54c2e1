"""Series that stop reporting are forgotten after ``AIOPS_DETECT_FORGET_AFTER_S`` of their partition's event time.

Pods come and go, and each brings new series: a partition that kept every state it
ever saw would grow for as long as the worker runs. A forgotten series leaves its
state, its tier-1 panel row (handed to the next new series) and, at the next
checkpoint, its table entry; if it comes back it starts cold.
"""

from __future__ import annotations

import pickle
import zlib
from collections.abc import Callable, Iterator

import pytest
from aiops_common.schemas import FeatureBatch, SeriesMeta
from aiops_detection.agents.anomaly_detector import AnomalyPartition
from aiops_detection.agents.crossing_predictor import CrossingPartition
from aiops_detection.agents.partition_state import load_state
from aiops_detection.detectors.series_detectors import STATE_FINGERPRINT
from aiops_detection.service_settings import DetectionServiceSettings

from .conftest import (
    SHIFT,
    SPIKE,
    WINDOW_MS,
    feed,
    incident_history,
    new_partition,
    periodic_history,
    window_batch,
    windows,
)

pytestmark = pytest.mark.unit

Settings = Callable[..., DetectionServiceSettings]
A = SeriesMeta("cpu", {"host": "a"})
B = SeriesMeta("cpu", {"host": "b"})
C = SeriesMeta("cpu", {"host": "c"})
IDLE_WINDOWS = 30


def ident(meta: SeriesMeta) -> str:
    return f"{meta.key}@{WINDOW_MS}"


def test_a_series_gone_quiet_is_forgotten_and_its_row_reused_without_touching_the_others(
    service_settings: Settings,
) -> None:
    settings = service_settings(detect_forget_after_s=IDLE_WINDOWS * WINDOW_MS / 1000)
    part = new_partition(settings)
    values = incident_history(320)
    found = feed(part, A, values[:100]) + feed(part, B, periodic_history(100))
    part.changed()
    b_row = part._tier1[ident(B)][1]

    # B stops at window 99; A goes on. B's latest window falls out of the last 30 minutes at window 130.
    found += feed(part, A, values[100:125], first=100)
    assert ident(B) in part.states
    found += feed(part, A, values[125:140], first=125)
    assert ident(B) not in part.states and ident(A) in part.states
    assert part.changed()[ident(B)] is None  # the checkpoint deletes its entry
    assert len(next(iter(part._panels.values()))) == 1

    found += feed(part, C, periodic_history(10), first=140)
    assert part._tier1[ident(C)][1] == b_row  # the next new series takes B's row
    found += feed(part, A, values[140:], first=140)
    # A alerts on exactly what it alerts on alone: B's going and C's coming changed nothing for it.
    assert windows([d for d in found if d.series.key == A.key]) == windows(feed(new_partition(settings), A, values))
    assert windows(found) == [SHIFT, SPIKE]

    # B comes back: a new series, cold.
    feed(part, B, periodic_history(5), first=320)
    assert part.states[ident(B)].seen == 5 and not part.states[ident(B)].warm


def test_forgetting_follows_event_time_and_can_be_turned_off(service_settings: Settings) -> None:
    kept = new_partition(service_settings(detect_forget_after_s=0))
    feed(kept, B, periodic_history(10))
    feed(kept, A, periodic_history(500), first=10)
    assert {ident(A), ident(B)} <= set(kept.states)
    # The crossing predictor forgets by the same rule.
    settings = service_settings(
        detect_forget_after_s=IDLE_WINDOWS * WINDOW_MS / 1000, detect_static_thresholds={"cpu": [None, 100.0]}
    )
    crossing = CrossingPartition(0, settings)
    crossing.process(_batch([B], 0, 10))
    crossing.process(_batch([A], 10, 50))
    assert set(crossing.states) == {ident(A)}
    assert crossing.changed()[ident(B)] is None


def _batch(series: list[SeriesMeta], first: int, count: int) -> FeatureBatch:
    return window_batch(series, first, [{"value": [50.0] * count, "count": [6.0] * count}] * len(series))


def test_nothing_is_forgotten_while_the_partition_sees_no_new_windows(service_settings: Settings) -> None:
    part: AnomalyPartition = new_partition(service_settings(detect_forget_after_s=IDLE_WINDOWS * WINDOW_MS / 1000))
    feed(part, A, periodic_history(10))
    feed(part, B, periodic_history(10), first=5)  # B's windows end later than A's, but not 30 minutes later
    feed(part, A, periodic_history(10))  # A delivered again: no newer event time
    assert {ident(A), ident(B)} == set(part.states)


DAYS_BEHIND = 3 * 1440  # windows: a backfill three days behind the live series, a hundred horizons


def feed_live(part: AnomalyPartition, first: int, stop: int) -> None:
    """Live series A's windows ``first...stop``, counted from the backfill's start, ``DAYS_BEHIND`` after it."""
    feed(part, A, periodic_history(DAYS_BEHIND + stop)[DAYS_BEHIND + first :], first=DAYS_BEHIND + first)


def backfill_beside_live(part: AnomalyPartition, stop: int) -> Iterator[None]:
    """A reporting now and B's history, replayed on its own clock days behind, a batch of each in turn."""
    history = periodic_history(stop, seed=2)
    for first in range(0, stop, 10):
        feed_live(part, first, first + 10)
        feed(part, B, history[first : first + 10], first=first)
        yield


def test_a_backfilled_series_days_behind_is_kept_while_it_reports_and_forgotten_once_silent(
    service_settings: Settings,
) -> None:
    part = new_partition(service_settings(detect_forget_after_s=IDLE_WINDOWS * WINDOW_MS / 1000))
    # Four horizons of partition time: B is heard from at every batch and kept, though its windows are old.
    for _ in backfill_beside_live(part, 120):
        assert {ident(A), ident(B)} == set(part.states)
        # A checkpoint, as the worker writes one every minute, stamps B with the partition's time now.
        assert ident(B) in part.changed()
    assert part.states[ident(B)].seen == 120

    # B's backfill ends: silent for less than the horizon of partition time it stays, past it it goes.
    feed_live(part, 120, 145)
    assert ident(B) in part.states
    feed_live(part, 145, 160)
    assert set(part.states) == {ident(A)}
    assert part.changed()[ident(B)] is None


def test_a_backfilled_series_survives_a_restart_and_its_first_sweep(service_settings: Settings) -> None:
    settings = service_settings(detect_forget_after_s=IDLE_WINDOWS * WINDOW_MS / 1000)
    part = new_partition(settings)
    for _ in backfill_beside_live(part, 50):
        pass
    checkpoint = part.changed()

    # Restarted: the first batch (the live series') sweeps at once; B, heard from just before, is kept,
    # and its backfill goes on from its checkpoint.
    restarted = new_partition(settings)
    restarted.restore({sid: blob for sid, blob in checkpoint.items() if blob is not None})
    feed_live(restarted, 50, 60)
    assert {ident(A), ident(B)} == set(restarted.states)
    feed(restarted, B, periodic_history(60, seed=2)[50:], first=50)
    assert restarted.states[ident(B)].seen == 60

    # A checkpoint written before the partition's time was kept loads too; its series gets a full horizon.
    old_format = zlib.compress(
        pickle.dumps((STATE_FINGERPRINT, load_state(checkpoint[ident(B)] or b"", STATE_FINGERPRINT)))
    )
    upgraded = new_partition(settings)
    upgraded.restore({ident(B): old_format})
    feed_live(upgraded, 50, 60)
    assert ident(B) in upgraded.states
    feed_live(upgraded, 60, 100)
    assert ident(B) not in upgraded.states
