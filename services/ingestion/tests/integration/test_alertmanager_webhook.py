"""Debian's Alertmanager notifies the ingestion service; each firing and each resolve arrives once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiops_common.broker.reader import read_values
from aiops_common.schemas import AlertRecord, AlertStatus
from aiops_common.testing import AlertmanagerServer
from aiops_common.testing.eventually import scaled
from aiops_common.topics import Topics

pytestmark = pytest.mark.integration


def test_firing_and_resolved_arrive_once_despite_repeats(ingestion: Any, external_server: Callable[..., Any]) -> None:
    am = external_server(
        AlertmanagerServer,
        config={
            "route": {
                "receiver": "aiops",
                "group_by": ["alertname"],
                "group_wait": "200ms",
                "group_interval": "1s",
                # Re-send the firing alert every second: duplicates the deduplicator must drop.
                "repeat_interval": "1s",
            },
            "receivers": [
                {"name": "aiops", "webhook_configs": [{"url": ingestion.http_url + "/api/v1/alerts/ingest"}]}
            ],
        },
    )
    labels = {"alertname": "HighLatency", "service": "checkout", "severity": "critical", "run": str(time.time_ns())}
    alert = {"labels": labels, "annotations": {"summary": "p99 above 2s"}, "generatorURL": "http://prom/graph"}
    assert httpx.post(am.url + "/api/v2/alerts", json=[alert]).status_code == 200

    def mine(values: list[bytes]) -> list[AlertRecord]:
        return [a for a in map(AlertRecord.decode, values) if a.labels.get("run") == labels["run"]]

    def read(spec: Any, until: Callable[[list[AlertRecord]], bool]) -> list[AlertRecord]:
        got = asyncio.run(
            read_values(
                ingestion.broker_url, spec, ingestion.prefix, until=lambda v: until(mine(v)), timeout_s=scaled(60)
            )
        )
        return mine(got)

    # Alertmanager delivers the firing alert repeatedly; wait until it did so at least twice.
    received = read(Topics.ALERTS_RECEIVED, lambda a: sum(x.status == AlertStatus.FIRING for x in a) >= 2)
    assert sum(x.status == AlertStatus.FIRING for x in received) >= 2

    resolved = {**alert, "endsAt": datetime.now(UTC).isoformat()}
    assert httpx.post(am.url + "/api/v2/alerts", json=[resolved]).status_code == 200

    # The deduplicator handles deliveries in order, so once the resolve is out, every earlier firing was judged.
    out = read(Topics.ALERTS_RAW, lambda a: any(x.status == AlertStatus.RESOLVED for x in a))
    assert [x.status for x in out] == [AlertStatus.FIRING, AlertStatus.RESOLVED]
    firing, resolve = out
    assert firing.fingerprint == resolve.fingerprint
    assert firing.name == "HighLatency" and firing.service == "checkout" and firing.severity == "critical"
    assert firing.annotations["summary"] == "p99 above 2s"
    assert firing.ends_at is None and resolve.ends_at is not None
