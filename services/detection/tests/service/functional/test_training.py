"""``aiops train`` from a SQLite TSDB: a new model version that a running worker picks up without a restart."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiops_common.broker import Publisher
from aiops_common.models import open_model_registry
from aiops_common.schemas import AnomalyRecord, MetricBatchBuilder, SeriesMeta
from aiops_common.topics import Topics
from aiops_common.tsdb import open_tsdb

from ..conftest import SHIFT, SPIKE, T0, WINDOW_MS, incident_history
from .conftest import STATE_S, TEST_S, DetectionWorker, aiops, read_until, send_windows

pytestmark = [pytest.mark.functional, pytest.mark.timeout(TEST_S)]

TRAINED = SeriesMeta("cpu", {"host": "a", "service": "api"})
UNTRAINED = SeriesMeta("cpu", {"host": "c", "service": "api"})  # the same values, no history in the TSDB
HISTORY = 150  # windows in the TSDB before the worker sees any


async def test_a_trained_version_is_picked_up_and_spares_the_cold_start(
    detection_worker: Callable[[], Awaitable[DetectionWorker]],
    publisher: Publisher,
    service_env: dict[str, str],
    broker_url: str,
    topic_prefix: str,
    tmp_path: Path,
) -> None:
    values = incident_history(300)
    data = tmp_path / "data"
    tsdb = open_tsdb(f"sqlite:///{data / 'tsdb.sqlite'}")
    builder = MetricBatchBuilder()
    for i in range(HISTORY):  # what the stream's TSDB writer records at every window end
        builder.add("cpu:value_60s", TRAINED.labels, T0 + (i + 1) * WINDOW_MS, float(values[i]))
    await tsdb.write(builder.build())
    await tsdb.close()

    worker = await detection_worker()
    end = datetime.fromtimestamp((T0 + HISTORY * WINDOW_MS) / 1000, UTC).isoformat()
    done = aiops(service_env, "train", "cpu", "--window", "60", "--since", "30d", "--end", end)
    assert "cascade-60s version 1: 1 series, 150 points" in done.stdout, done.stdout
    registry = open_model_registry(f"file://{data / 'models'}")
    latest = await registry.latest("cascade-60s")
    assert latest is not None and latest.version == 1
    assert latest.training_end_ms == T0 + HISTORY * WINDOW_MS and latest.metrics["series"] == 1.0
    version = await worker.eventually(
        lambda: worker.metric("aiops_detection_model_version", model="cascade-60s"),
        STATE_S,
        "the worker to load cascade-60s (its /metrics)",
    )
    assert version == 1.0

    for i in range(HISTORY, 300, 10):
        chunk = {"value": values[i : i + 10], "count": [6.0] * 10}
        await send_windows(publisher, [TRAINED, UNTRAINED], i, [chunk, chunk])

    def windows(got: list[AnomalyRecord]) -> set[tuple[str, int, int | None]]:
        return {
            (a.labels["host"], (int(a.window_start.timestamp() * 1000) - T0) // WINDOW_MS, a.model_version) for a in got
        }

    # The trained series alerts from its first window; the other is cold until window 250 and misses the shift.
    want = {("a", SHIFT, 1), ("a", SPIKE, 1), ("c", SPIKE, None)}
    got = await read_until(
        broker_url, topic_prefix, Topics.ANOMALIES, AnomalyRecord.decode, lambda got: windows(got) >= want, worker
    )
    assert windows(got) == want
    assert {a.model for a in got if a.labels["host"] == "a"} == {"cascade-60s"}
    assert "series starts from a trained model" in worker.log()
