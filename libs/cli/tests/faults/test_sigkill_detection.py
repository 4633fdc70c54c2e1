"""SIGKILL the detection worker while it is inside a ``features`` batch and restart it: against an uninterrupted worker
given the same input, the same anomalies (by id), none lost; a finding published twice is the same finding, and what
its consumers keep (the anomaly archive, by id) is the same as the uninterrupted run's."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from aiops_cli.testing import WorkerProcess, worker_env
from aiops_common.broker import Publisher, ensure_topics, free_port
from aiops_common.broker.reader import read_to_end
from aiops_common.documents import open_document_store
from aiops_common.schemas import AnomalyRecord, SeriesMeta
from aiops_common.schemas.metrics import shard_of
from aiops_common.testing.eventually import eventually, scaled
from aiops_common.topics import Topics
from aiops_detection.testing import feature_messages
from prometheus_client.parser import text_string_to_metric_families

from .conftest import stop_all

pytestmark = pytest.mark.functional

SETTINGS = {"detect_min_history": 100, "detect_refractory_points": 20, "detect_checkpoint_interval_s": 0}
SERIES = [SeriesMeta("cpu", {"host": f"h{i}", "service": "api"}) for i in range(2)]
N = 400
FIRST = 60
"""Windows before the batch the worker is killed in: three small batches per partition, all in the cold start."""
BIG = [(first, 20) for first in range(0, FIRST, 20)] + [(FIRST, N - FIRST)]
"""(first window, windows) of each batch per partition. The last one carries every series through its cold start
(the tiers fit their models there, seconds of work) and then its faults: the worker is killed inside it."""


def values(seed: int) -> np.ndarray:
    """A daily-like cycle with noise; a level shift at 220, spikes at 280 and 340."""
    rng = np.random.default_rng(seed)
    cycle = np.sin(np.arange(30) * 2 * np.pi / 30) + rng.normal(0, 0.2, 30)
    out = 10.0 + np.tile(cycle, N // 30 + 1)[:N]
    out[220:] += 4.0
    out[280] += 8.0
    out[340] += 11.0
    return out


@dataclass
class Run:
    """One detection worker's topics and folder; ``worker`` is the one running now."""

    broker_url: str
    prefix: str
    data_dir: Path
    log_dir: Path
    worker: WorkerProcess | None = None
    starts: int = 0

    def start(self) -> WorkerProcess:
        env = worker_env(self.broker_url, self.prefix, self.data_dir, **SETTINGS)
        log = self.log_dir / f"{self.data_dir.name}-detection-{self.starts}.log"
        self.starts += 1
        self.worker = WorkerProcess.start("detection", env, log, free_port())
        return self.worker

    @property
    def live(self) -> WorkerProcess:
        assert self.worker is not None
        return self.worker

    async def send(self, first: int, count: int) -> None:
        columns: list[dict[str, Sequence[float]]] = [
            {"value": v[first : first + count].tolist(), "count": [6.0] * count}
            for v in map(values, range(len(SERIES)))
        ]
        publisher = Publisher(self.broker_url, self.prefix)
        try:
            await publisher.publish(feature_messages(SERIES, first, columns))
        finally:
            await publisher.stop()

    async def progress(self) -> tuple[float, float]:
        """(messages the anomaly detector took, messages it finished) per its ``/metrics``."""
        async with httpx.AsyncClient(timeout=5.0) as client:
            text = (await client.get(self.live.probe_url + "/metrics")).text
        found = {"aiops_agent_records_in_total": 0.0, "aiops_agent_batch_seconds_count": 0.0}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name in found and sample.labels.get("agent") == "anomaly_detector":
                    found[sample.name] = sample.value
        return found["aiops_agent_records_in_total"], found["aiops_agent_batch_seconds_count"]

    async def anomalies(self) -> list[AnomalyRecord]:
        found: list[AnomalyRecord] = []
        await read_to_end(
            self.broker_url, Topics.ANOMALIES, self.prefix, lambda v: found.append(AnomalyRecord.decode(v))
        )
        return found

    async def archived(self) -> set[str]:
        store = open_document_store(f"sqlite:///{self.data_dir / 'documents.sqlite'}")
        try:
            return {doc.id for doc in (await store.query("anomalies", limit=1000)).documents}
        finally:
            await store.close()


def finding(a: AnomalyRecord) -> tuple[object, ...]:
    """What an anomaly says, without when it was published."""
    return (a.id, a.series_key, a.window_start, a.value, a.score, a.lower, a.upper, a.severity, a.detector)


def test_sigkill_inside_a_features_batch_loses_and_adds_nothing(broker_url: str, tmp_path: Path) -> None:
    partitions = {shard_of(meta.key, Topics.FEATURES.partitions) for meta in SERIES}
    small = (len(BIG) - 1) * len(partitions)
    total = len(BIG) * len(partitions)
    calm, killed = (Run(broker_url, f"t{name}{free_port()}.", tmp_path / name, tmp_path) for name in ("calm", "killed"))
    try:

        async def first_part() -> None:
            for run in (calm, killed):
                await ensure_topics(broker_url, run.prefix)
                run.start()
            for run in (calm, killed):
                await run.live.until_ready()
            for run in (calm, killed):
                for first, count in BIG[:-1]:
                    await run.send(first, count)

            async def handled() -> bool:
                return await killed.progress() == (small, small)

            await killed.live.eventually(handled, scaled(120), "the small batches handled")
            for run in (calm, killed):
                await run.send(*BIG[-1])

            async def inside() -> bool:
                took, done = await killed.progress()
                return took > small and done < took  # the big batch taken, not finished

            # Polled often: the batch takes seconds (every series fits its models in it), the poll milliseconds.
            await eventually(inside, timeout=scaled(120), what="the worker inside the big batch", interval=0.02)
            killed.live.kill()

        asyncio.run(first_part())
        killed.start()

        async def outcomes() -> tuple[list[AnomalyRecord], list[AnomalyRecord]]:
            async def calm_done() -> bool:
                return await calm.progress() == (total, total)

            await calm.live.eventually(calm_done, scaled(120), "the uninterrupted worker through its input")
            want = await calm.anomalies()
            assert want, "the input has faults: the uninterrupted worker found none"

            async def caught_up() -> list[AnomalyRecord]:
                got = await killed.anomalies()
                missing = {a.id for a in want} - {a.id for a in got}
                assert not missing, f"anomalies of the uninterrupted run missing: {sorted(missing)}"
                return got

            await killed.live.until_ready()
            return want, await killed.live.eventually(caught_up, scaled(150), "the restarted worker caught up")

        want, got = asyncio.run(outcomes())
        assert max(Counter(a.id for a in want).values()) == 1, "the uninterrupted worker published an id twice"
        # The same anomalies, none lost and none added: the restarted worker restored its checkpoint (before the
        # batch) and read the batch again.
        assert {a.id for a in got} == {a.id for a in want}
        assert {finding(a) for a in got} == {finding(a) for a in want}
        # A batch whose findings were published just before the kill, its checkpoint not yet on the broker, is
        # read again and published again under the same ids (at-least-once): the same finding, not another.
        repeated = {i for i, n in Counter(a.id for a in got).items() if n > 1}
        for anomaly_id in repeated:
            assert len({finding(a) for a in got if a.id == anomaly_id}) == 1, anomaly_id

        async def archived_alike() -> bool:
            # The consumers keep anomalies by id (the archive here, the correlator's members): they hold the same.
            for run in (calm, killed):
                assert await run.archived() == {a.id for a in want}, run.prefix
            return True

        asyncio.run(killed.live.eventually(archived_alike, scaled(60), "both archives holding the same anomalies"))
        killed.live.check_alive()
    finally:
        stop_all([run.worker for run in (calm, killed) if run.worker is not None])
