"""The replaying stage takes each offset once, in order, and reopens a revoked partition; checkpoint entries."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgpack
import pytest
from aiops_common.partition_replay import pack, unpack
from faust.types import TP

pytestmark = pytest.mark.unit


def test_checkpoint_entries_round_trip_and_refuse_other_values() -> None:
    entry = {"after": 41, "idle_ms": 5000, "marks": {3: 120_000}, "miner": b"\x00\x01"}
    assert unpack(pack(entry)) == entry
    with pytest.raises(ValueError, match="not a map"):
        unpack(msgpack.packb([1, 2]))


async def test_delivered_offsets_are_taken_once_and_in_order(recording_stage: Callable[..., Any]) -> None:
    stage = recording_stage("unit-order")
    await stage.handle(0, 5, b"a")  # no checkpoint: starts at the first delivered offset
    await stage.handle(0, 6, b"b")
    await stage.handle(0, 6, b"b")  # delivered again (a retry, a rebalance): already taken
    await stage.handle(0, 2, b"old")  # before where the state starts: nothing to take
    await stage.handle(1, 0, b"c")
    assert stage.states == {0: [(5, b"a"), (6, b"b")], 1: [(0, b"c")]}
    assert stage.next_offset == {0: 7, 1: 1}
    assert stage.restores == [(0, 5), (1, 0)], "each partition opened once"
    assert stage.deliveries == 3, "only messages taken in count as deliveries"


async def test_covered_offsets_are_dropped_after_a_restore(recording_stage: Callable[..., Any]) -> None:
    stage = recording_stage("unit-covered", checkpoints={0: 10})
    for offset in (8, 9, 10, 11):
        await stage.handle(0, offset, str(offset).encode())
    assert stage.states[0] == [(10, b"10"), (11, b"11")]


async def test_a_revoked_partition_is_forgotten_and_opened_again(recording_stage: Callable[..., Any]) -> None:
    stage = recording_stage("unit-revoke")
    await stage.handle(0, 3, b"a")
    await stage.handle(1, 7, b"b")
    await stage._on_revoked(stage.app, {TP("unit-revoke", 0), TP("another-topic", 1)})
    assert set(stage.states) == {1} and set(stage.next_offset) == {1}
    await stage.handle(0, 4, b"c")
    assert stage.restores == [(0, 3), (1, 7), (0, 4)]
    assert stage.states[0] == [(4, b"c")]
