"""The detection worker on the embedded broker: incidents alert once, feedback desensitises, state survives SIGKILL."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np
import pytest
from aiops_common.broker import Publisher
from aiops_common.feedback import StoredLabel, open_feedback_store
from aiops_common.schemas import AnomalyRecord, AnomalySeverity, PredictionRecord, SeriesMeta, anomaly_id
from aiops_common.topics import Topics

from ..conftest import COLD_SPIKE, SECOND_SPIKE, SHIFT, SPIKE, T0, WINDOW_MS, incident_history
from .conftest import STATE_S, TEST_S, Checkpoint, DetectionWorker, aiops, read_until, send_windows, until_checkpointed

pytestmark = [pytest.mark.functional, pytest.mark.timeout(TEST_S)]

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
    detection_worker: Callable[[], Awaitable[DetectionWorker]],
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

    worker = await detection_worker()
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

    # An id the platform never published is refused, naming the store it was looked up in.
    unknown = aiops(service_env, "feedback", "an-000000000000000000000000", "--false-positive", status=1)
    assert "no anomaly 'an-000000000000000000000000' in the feedback store" in unknown.stderr
    assert "--force" in unknown.stderr

    # A label may come before its anomaly (--force): B's second spike, not detected yet, is labelled a true
    # positive now. It is kept, pending, and applied once the anomaly is archived, after the restart below.
    second_b = anomaly_id(B.key, T0 + SECOND_SPIKE * WINDOW_MS, WINDOW_MS)
    aiops(service_env, "feedback", second_b, "--true-positive", "--force")

    # The operator says A's spike was expected: A's series gets less sensitive, B's does not.
    spike_a = next(a for a in anomalies if a.id == anomaly_id(A.key, T0 + SPIKE * WINDOW_MS, WINDOW_MS))
    done = aiops(service_env, "feedback", spike_a.id, "--false-positive", "--note", "nightly batch")
    assert "false_positive" in done.stdout
    store = open_feedback_store(f"sqlite:///{tmp_path / 'data' / 'feedback.sqlite'}")
    try:

        async def applied() -> StoredLabel | None:
            kept = await store.labels(spike_a.id)
            assert kept, "the label is not in the feedback store yet"
            stored = await store.label(kept[0].id)
            return stored if stored is not None and stored.applied_at is not None else None

        stored = await worker.eventually(applied, STATE_S, "the label on A's spike to be applied")
        assert stored.series_key == A.key
        assert (await store.sensitivity(A.key)).slack > 0
        assert (await store.sensitivity(B.key)).slack == 0
        assert [f.note for f in await store.labels(spike_a.id)] == ["nightly batch"]
        early = await store.labels(second_b)
        assert len(early) == 1
        pending = await store.label(early[0].id)
        assert pending is not None and pending.applied_at is None  # its anomaly does not exist yet
    finally:
        await store.close()

    # Killed once its checkpoint covers everything sent, started again: it resumes from that checkpoint,
    # warm (a cold B would miss its second spike).
    def both(checkpoint: Checkpoint) -> bool:
        return checkpoint.holds(A) and checkpoint.holds(B)

    await until_checkpointed(broker_url, topic_prefix, worker, both)
    worker.kill()
    restarted = await detection_worker()
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

    # The label that came first is applied now that B's second spike is archived: recorded, not just logged.
    store = open_feedback_store(f"sqlite:///{tmp_path / 'data' / 'feedback.sqlite'}")
    try:

        async def applied_late() -> StoredLabel | None:
            stored = await store.label(early[0].id)
            return stored if stored is not None and stored.applied_at is not None else None

        late = await restarted.eventually(applied_late, STATE_S, "the early label on B's second spike to be applied")
        assert late.series_key == B.key
        assert (await store.sensitivity(B.key)).true_positives == 1
    finally:
        await store.close()

    predictions = await read_until(
        broker_url, topic_prefix, Topics.PREDICTIONS, PredictionRecord.decode, lambda got: len(got) > 0, restarted
    )
    assert {(p.series_key, p.threshold, p.direction.value) for p in predictions} == {(DISK.key, 95.0, "above")}
