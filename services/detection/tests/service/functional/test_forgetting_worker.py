"""The detection worker forgets a series gone quiet: its checkpoint entry goes, and after a restart it is cold."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from aiops_common.broker import Publisher
from aiops_common.schemas import SeriesMeta
from aiops_common.schemas.metrics import shard_of
from aiops_common.topics import Topics

from ..conftest import WINDOW_MS, periodic_history
from .conftest import TEST_S, DetectionWorker, send_windows, until_checkpointed

pytestmark = [pytest.mark.functional, pytest.mark.timeout(TEST_S)]

A = SeriesMeta("cpu", {"host": "a"})
IDLE_WINDOWS = 30


def same_partition_as(meta: SeriesMeta) -> SeriesMeta:
    """Another series on ``meta``'s partition: event time, and so forgetting, is per partition."""
    target = shard_of(meta.key, Topics.FEATURES.partitions)
    return next(
        other
        for i in range(1000)
        if shard_of((other := SeriesMeta("cpu", {"host": f"b{i}"})).key, Topics.FEATURES.partitions) == target
    )


async def test_a_quiet_series_is_forgotten_checkpointed_away_and_cold_when_it_returns(
    detection_worker: Callable[[], Awaitable[DetectionWorker]],
    publisher: Publisher,
    service_env: dict[str, str],
    broker_url: str,
    topic_prefix: str,
) -> None:
    service_env["AIOPS_DETECT_FORGET_AFTER_S"] = str(IDLE_WINDOWS * WINDOW_MS // 1000)
    b = same_partition_as(A)
    values = periodic_history(200)
    worker = await detection_worker()
    for first in range(0, 120, 10):
        await send_windows(publisher, [A, b], first, [{"value": values[first : first + 10], "count": [6.0] * 10}] * 2)
    await until_checkpointed(broker_url, topic_prefix, worker, lambda c: c.holds(A) and c.holds(b))

    # b stops at window 119; A goes on past window 149, when b has been quiet for 30 minutes: b is
    # forgotten, and a checkpoint (written after every batch here) drops its entry.
    for first in range(120, 180, 10):
        await send_windows(publisher, [A], first, [{"value": values[first : first + 10], "count": [6.0] * 10}])
    await until_checkpointed(broker_url, topic_prefix, worker, lambda c: c.holds(A) and not c.holds(b))
    assert "idle series forgotten" in worker.log()

    # Restarted, only A is restored; b comes back and starts cold.
    worker.kill()
    restarted = await detection_worker()
    await send_windows(publisher, [A, b], 180, [{"value": values[180:190], "count": [6.0] * 10}] * 2)
    await until_checkpointed(broker_url, topic_prefix, restarted, lambda c: c.holds(A) and c.holds(b))
    lines = restarted.log().splitlines()
    restored = [line for line in lines if "restored checkpoint" in line and "series=0" not in line]
    assert len(restored) == 1 and "series=1" in restored[0]
    cold = [line for line in lines if "series cold start" in line]
    assert len(cold) == 1 and b.labels["host"] in cold[0]  # b starts again; A continues from its checkpoint
