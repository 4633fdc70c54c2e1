"""The detection worker on the embedded broker: incidents alert once, feedback desensitises, state survives SIGKILL."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from aiops_common.broker import Publisher
from aiops_common.feedback import open_feedback_store
from aiops_common.schemas import AnomalyRecord, AnomalySeverity, PredictionRecord, SeriesMeta, anomaly_id
from aiops_common.topics import Topics

from ..conftest import COLD_SPIKE, SECOND_SPIKE, SHIFT, SPIKE, T0, WINDOW_MS, incident_history
from .conftest import DetectionWorker, aiops, read_until, send_windows

pytestmark = pytest.mark.functional

A = SeriesMeta("cpu", {"host": "a", "service": "api"})
B = SeriesMeta("cpu", {"host": "b", "service": "api"})  # the same values as A, never labelled: the control
DISK = SeriesMeta("disk_used_percent", {"host": "a", "mount": "/"})
SENTINEL = 380  # a spike on A far beyond any slack: once it is out, A's earlier windows were all judged
STEP = 10  # windows per batch


def cpu_windows(anomalies: list[AnomalyRecord]) -> Counter[tuple[str, int]]:
    return Counter(
        (a.labels["host"], (int(a.window_start.timestamp() * 1000) - T0) // WINDOW_MS)
        for a in anomalies
        if a.series_name == "cpu"
    )


async def test_incidents_alert_once_feedback_desensitises_and_state_survives_sigkill(
    detection_worker: Callable[[], DetectionWorker],
    publisher: Publisher,
    service_env: dict[str, str],
    broker_url: str,
    topic_prefix: str,
    tmp_path: Path,
) -> None:
    n = 400
    cpu = incident_history(n)
    cpu_a = cpu.copy()
    cpu_a[SENTINEL] += 40.0
    disk = 60.0 + 0.1 * np.arange(n)  # +6 %/hour: 95 % within the 6-hour horizon from the start

    async def send(first: int, stop: int) -> None:
        for i in range(first, stop, STEP):
            cols = [{"value": v[i : i + STEP], "count": [6.0] * STEP} for v in (cpu_a, cpu, disk)]
            await send_windows(publisher, [A, B, DISK], i, cols)

    async def read(done: Callable[[list[AnomalyRecord]], bool], worker: DetectionWorker) -> list[AnomalyRecord]:
        return await read_until(broker_url, topic_prefix, Topics.ANOMALIES, AnomalyRecord.decode, done, worker)

    worker = detection_worker()
    await send(0, 300)
    first_four = {("a", SHIFT), ("a", SPIKE), ("b", SHIFT), ("b", SPIKE)}
    anomalies = await read(lambda got: set(cpu_windows(got)) >= first_four, worker)
    for a in anomalies:
        if a.series_name == "cpu":
            assert a.id == anomaly_id(a.series_key, int(a.window_start.timestamp() * 1000), WINDOW_MS)
            assert a.detector == "cascade" and a.severity == AnomalySeverity.CRITICAL and a.score >= 0.9
            assert a.lower is not None and a.upper is not None and a.value is not None and a.value > a.upper
            assert set(a.evidence) == {"basic", "agile", "robust"} and a.service == "api"
            assert (a.window_end - a.window_start).total_seconds() == 60

    # A spike re-delivered (a producer's retry): detected once, published once.
    await send(SPIKE - STEP // 2, SPIKE + STEP // 2)

    # The operator says A's spike was expected: A's series gets less sensitive, B's does not.
    spike_a = next(a for a in anomalies if a.id == anomaly_id(A.key, T0 + SPIKE * WINDOW_MS, WINDOW_MS))
    done = aiops(service_env, "feedback", spike_a.id, "--false-positive", "--note", "nightly batch")
    assert "false_positive" in done.stdout
    store = open_feedback_store(f"sqlite:///{tmp_path / 'data' / 'feedback.sqlite'}")
    try:
        await worker.until_logged("feedback applied")
        assert (await store.sensitivity(A.key)).slack > 0
        assert (await store.sensitivity(B.key)).slack == 0
        assert [f.note for f in await store.labels(spike_a.id)] == ["nightly batch"]
    finally:
        await store.close()

    # Killed and started again: it resumes from its checkpoint, warm (a cold B would miss its second spike).
    worker.kill()
    restarted = detection_worker()
    await send(300, n)
    final = {*first_four, ("b", SECOND_SPIKE), ("a", SENTINEL)}
    anomalies = await read(lambda got: set(cpu_windows(got)) >= final, restarted)
    windows = cpu_windows(anomalies)
    # Exactly these: nothing in A's cold start (window COLD_SPIKE), A's second spike is no more than the
    # deviation the operator called normal, and nothing was published twice.
    assert set(windows) == final and ("a", COLD_SPIKE) not in windows
    assert max(windows.values()) == 1, windows
    assert "restored checkpoint" in restarted.log()
    assert "series cold start" not in restarted.log()

    predictions = await read_until(
        broker_url, topic_prefix, Topics.PREDICTIONS, PredictionRecord.decode, lambda got: len(got) > 0, restarted
    )
    assert {(p.series_key, p.threshold, p.direction.value) for p in predictions} == {(DISK.key, 95.0, "above")}
