"""The TSDB (a real Prometheus) down while an incident is analysed, then back: RCA publishes a degraded result
naming the TSDB as missing evidence, and once Prometheus answers again the incident's next revision is analysed
from its series, status ok, with the right cause first."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiops_cli.testing import WorkerProcess
from aiops_common.schemas import AnomalyRecord, IncidentRecord, RcaResult, RcaStatus
from aiops_common.testing import PrometheusServer
from aiops_common.testing.eventually import scaled
from aiops_common.testing.records import service_anomaly
from aiops_rca.testing import SHOP_CALLS, SHOP_SERVICES, fault_anomalies, load_topology, write_history

from .conftest import MakePipeline, Pipeline

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)
ONSET = NOW - timedelta(minutes=5)
# The history is two hours back: Prometheus takes it as out-of-order samples within this window.
PROMETHEUS_CONFIG = {"global": {"scrape_interval": "15s"}, "storage": {"tsdb": {"out_of_order_time_window": "4h"}}}


async def _prepare(pipeline: Pipeline, tsdb_url: str) -> None:
    await load_topology(pipeline.topology_url, SHOP_SERVICES, SHOP_CALLS, ONSET)
    # The history is two hours back: Prometheus takes it as out-of-order samples (PROMETHEUS_CONFIG).
    await write_history(tsdb_url, ONSET, NOW)


async def analysed_with(pipeline: Pipeline, rca: WorkerProcess, members: int) -> tuple[IncidentRecord, RcaResult]:
    """The fault's incident once it has ``members`` members, and the result of that revision."""

    async def found() -> tuple[IncidentRecord, RcaResult] | None:
        incidents = [i for i in (await pipeline.incidents()).values() if "payment" in i.services]
        assert len(incidents) == 1, [(i.id, i.services) for i in incidents]
        (incident,) = incidents
        if len(incident.members) < members:
            return None
        newest = [
            r
            for r in await pipeline.results()
            if (r.incident_id, r.incident_revision) == (incident.id, incident.revision)
        ]
        return (incident, newest[0]) if newest else None

    return await rca.eventually(found, scaled(120), f"a result for the incident with {members} members")


def test_tsdb_down_then_back_gives_degraded_then_ok_results(
    make_pipeline: MakePipeline, external_server: Callable[..., Any]
) -> None:
    prometheus: PrometheusServer = external_server(PrometheusServer, config=PROMETHEUS_CONFIG)
    tsdb_url = f"prometheus://127.0.0.1:{prometheus.port}"
    pipeline = make_pipeline()
    asyncio.run(_prepare(pipeline, tsdb_url))
    prometheus.stop()  # the outage: nothing listens on its port
    correlation = pipeline.start_correlation()
    rca = pipeline.start("rca", rca_debounce_s=0.5, tsdb_url=tsdb_url)
    first: list[AnomalyRecord] = fault_anomalies(ONSET)

    async def while_down() -> tuple[IncidentRecord, RcaResult]:
        await correlation.until_ready()
        await rca.until_ready()
        await pipeline.publish_anomalies(first)
        return await analysed_with(pipeline, rca, len(first))

    incident, degraded = asyncio.run(while_down())
    assert degraded.status == RcaStatus.DEGRADED, degraded
    assert any(m.startswith("tsdb") for m in degraded.missing), degraded.missing
    assert degraded.causes, "a ranking from the signals and the topology"

    prometheus.start()  # back, with what it held before the outage (same port, same data folder)

    async def when_back() -> tuple[IncidentRecord, RcaResult]:
        # A new member makes a new revision, which is analysed again.
        await pipeline.publish_anomalies(
            [service_anomaly("red.error_rate:value_10s", "payment", ONSET + timedelta(seconds=10))]
        )
        return await analysed_with(pipeline, rca, len(first) + 1)

    again, ok = asyncio.run(when_back())
    assert again.id == incident.id and again.revision > incident.revision
    assert ok.status == RcaStatus.OK, ok.missing
    assert not ok.missing
    assert ok.top is not None and ok.top.service == "payment", [(c.service, c.probability) for c in ok.causes]
    rca.check_alive()
