"""The running detection worker follows a new configuration version without a restart, and its anomalies reach
the document store the API reads."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from aiops_common.broker import Publisher
from aiops_common.documents import DocumentFilter, open_document_store
from aiops_common.schemas import AnomalyRecord, SeriesMeta
from aiops_common.schemas.config import DetectionConfig, DetectionConfigVersion, StaticRule, config_doc_id
from aiops_common.schemas.metrics import shard_of
from aiops_common.topics import Topics

from ..conftest import T0, WINDOW_MS
from .conftest import STATE_S, TEST_S, DetectionWorker, read_until, send_windows

pytestmark = [pytest.mark.functional, pytest.mark.timeout(TEST_S)]

TEMP = SeriesMeta("temp_celsius", {"host": "a", "service": "api"})


def _sentinel() -> SeriesMeta:
    """A disk series (limited at 95 by the worker's settings) on TEMP's partition: once the sentinel's anomaly
    is out, the batch that carried TEMP's windows beside it was judged."""
    for i in range(1000):
        disk = SeriesMeta("disk_used_percent", {"host": f"h{i}", "service": "db"})
        if shard_of(disk.key, Topics.FEATURES.partitions) == shard_of(TEMP.key, Topics.FEATURES.partitions):
            return disk
    raise AssertionError("no disk series on TEMP's partition")


def _window(a: AnomalyRecord) -> tuple[str, int]:
    return a.series_name, (int(a.window_start.timestamp() * 1000) - T0) // WINDOW_MS


@pytest.fixture
def service_env(service_env: dict[str, str]) -> dict[str, str]:
    return {**service_env, "AIOPS_DETECT_CONFIG_POLL_S": "0.5"}


async def test_a_new_static_rule_changes_what_the_running_worker_flags(
    detection_worker: Callable[[], Awaitable[DetectionWorker]],
    publisher: Publisher,
    broker_url: str,
    topic_prefix: str,
    tmp_path: Path,
) -> None:
    disk = _sentinel()
    temp = np.full(10, 50.0)
    temp[[2, 7]] = 70.0  # one window above the coming rule's limit before it is set, one after
    level = np.full(10, 50.0)
    level[[2, 7]] = [96.0, 97.0]  # the sentinel: beyond the settings' 95 beside each of them

    async def send(first: int) -> None:
        cols = [{"value": v[first : first + 5], "count": [6.0] * 5} for v in (temp, level)]
        await send_windows(publisher, [TEMP, disk], first, cols)

    async def flagged(expected: set[tuple[str, int]], worker: DetectionWorker) -> set[tuple[str, int]]:
        found = await read_until(
            broker_url,
            topic_prefix,
            Topics.ANOMALIES,
            AnomalyRecord.decode,
            lambda got: {_window(a) for a in got} >= expected,
            worker,
        )
        return {_window(a) for a in found}

    worker = await detection_worker()
    assert await worker.metric("aiops_detect_config_version") == 0
    await send(0)
    # Without configuration the temperature is in its cold start: nothing of it alerts.
    assert await flagged({("disk_used_percent", 2)}, worker) == {("disk_used_percent", 2)}

    documents = open_document_store(f"sqlite:///{tmp_path / 'data' / 'documents.sqlite'}")
    try:
        rule = StaticRule(metric=TEMP.name, service="api", upper=60.0)
        made = DetectionConfigVersion(
            version=1, at=datetime.now(UTC), by="ops", note="known limit", config=DetectionConfig(static_rules=[rule])
        )
        await documents.upsert("config", config_doc_id("detection", 1), made.model_dump(mode="json"), 0)

        async def applied() -> bool:
            return await worker.metric("aiops_detect_config_version") == 1

        await worker.eventually(applied, STATE_S, "the worker to apply configuration version 1")
        await send(5)
        # The same worker, never restarted, now flags the temperature beyond the rule's limit.
        after = await flagged({("disk_used_percent", 7), (TEMP.name, 7)}, worker)
        assert after == {("disk_used_percent", 2), ("disk_used_percent", 7), (TEMP.name, 7)}
        assert "detection configuration applied" in worker.log()

        async def archived() -> list[AnomalyRecord] | None:
            page = await documents.query("anomalies", DocumentFilter(service="api"))
            return [
                AnomalyRecord.model_validate({k: v for k, v in d.body.items() if k != "services"})
                for d in page.documents
            ] or None

        in_store = await worker.eventually(archived, STATE_S, "the temperature's anomaly in the document store")
    finally:
        await documents.close()
    [anomaly] = in_store
    assert anomaly.detector == "static" and anomaly.upper == 60.0 and anomaly.value == 70.0
