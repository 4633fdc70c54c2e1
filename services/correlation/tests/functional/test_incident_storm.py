"""An alert storm through real workers: Alertmanager webhooks and a deployment into ingestion, anomalies from a
producer, the correlation worker -> the expected incidents; SIGKILLed mid-storm and restarted -> the same ones."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiops_cli.testing import WorkerProcess, worker_env
from aiops_common.broker import Publisher, free_port
from aiops_common.broker.publisher import Message
from aiops_common.broker.reader import read_values
from aiops_common.documents import open_document_store
from aiops_common.schemas import AnomalyRecord, IncidentRecord, IncidentStatus
from aiops_common.testing.eventually import scaled
from aiops_common.testing.records import service_anomaly
from aiops_common.topics import Topics
from aiops_common.topology import Dependency, Service, open_topology_store
from aiops_correlation import cli
from aiops_correlation.agents.incident_archive import newest
from typer.testing import CliRunner

pytestmark = pytest.mark.functional
runner = CliRunner()

NOW = datetime.now(UTC).replace(microsecond=0)
ONSET = NOW - timedelta(minutes=10)

# frontend -> checkout -> payment -> db ; checkout -> inventory ; search stands alone.
SERVICES = ["frontend", "checkout", "payment", "db", "inventory", "search"]
CALLS = [("frontend", "checkout"), ("checkout", "payment"), ("payment", "db"), ("checkout", "inventory")]


@dataclass
class Platform:
    """An ingestion and a correlation worker on the session broker, under one topic prefix and data folder."""

    broker_url: str
    prefix: str
    data_dir: Path
    ingestion: WorkerProcess
    ingest_url: str
    start_correlation: Callable[[], WorkerProcess]

    async def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.post(self.ingest_url + "/api/v1/alerts/ingest", json=webhook(alerts))
            assert response.status_code < 300, response.text

    async def post_deployment(self, service: str, version: str, at: datetime) -> None:
        body = {"service": service, "version": version, "previous_version": "v2.4.0", "at": at.isoformat()}
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.post(self.ingest_url + "/api/v1/events/deployment", json=body)
            assert response.status_code < 300, response.text

    async def publish_anomalies(self, anomalies: list[AnomalyRecord]) -> None:
        publisher = Publisher(self.broker_url, self.prefix)
        try:
            await publisher.publish(
                [Message(Topics.ANOMALIES, a.encode(), key=a.series_key.encode()) for a in anomalies]
            )
        finally:
            await publisher.stop()

    async def incidents(
        self, until: Callable[[dict[str, IncidentRecord]], bool], timeout_s: float
    ) -> dict[str, IncidentRecord]:
        """The newest revision of every incident on ``incidents``, once ``until`` holds for them."""

        def latest(values: list[bytes]) -> dict[str, IncidentRecord]:
            records = newest([IncidentRecord.decode(v) for v in values], lambda r: r.id, lambda r: r.revision)
            return {r.id: r for r in records}

        values = await read_values(
            self.broker_url, Topics.INCIDENTS, self.prefix, until=lambda v: until(latest(v)), timeout_s=timeout_s
        )
        return latest(values)


def webhook(alerts: list[dict[str, Any]]) -> dict[str, Any]:
    """An Alertmanager (v4) webhook notification carrying ``alerts``, as its webhook notifier sends it."""
    return {
        "version": "4",
        "groupKey": '{}:{alertname=~".+"}',
        "truncatedAlerts": 0,
        "status": "firing" if any(a["status"] == "firing" for a in alerts) else "resolved",
        "receiver": "aiops",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": alerts,
    }


def alert(
    name: str, service: str, pod: str, at: datetime, severity: str = "critical", resolved_at: datetime | None = None
) -> dict[str, Any]:
    fingerprint = hashlib.sha256(f"{name}/{service}/{pod}".encode()).hexdigest()[:16]
    return {
        "status": "resolved" if resolved_at else "firing",
        "labels": {"alertname": name, "service": service, "pod": pod, "severity": severity, "namespace": "shop"},
        "annotations": {"summary": f"{name} on {pod}"},
        "startsAt": at.isoformat().replace("+00:00", "Z"),
        "endsAt": (resolved_at.isoformat().replace("+00:00", "Z") if resolved_at else "0001-01-01T00:00:00Z"),
        "generatorURL": "http://prometheus:9090/graph",
        "fingerprint": fingerprint,
    }


def anomaly(series: str, service: str, at: datetime) -> AnomalyRecord:
    return service_anomaly(series, service, at, timedelta(minutes=1), value=2.5)


def cascade_alerts() -> list[dict[str, Any]]:
    """payment slows down first; checkout's and frontend's errors follow; one alert per pod."""
    out = [alert("HighLatency", "payment", f"payment-{i}", ONSET + timedelta(seconds=i)) for i in range(3)]
    out += [alert("HighErrorRate", "checkout", f"checkout-{i}", ONSET + timedelta(seconds=40 + i)) for i in range(2)]
    out += [alert("HighErrorRate", "frontend", f"frontend-{i}", ONSET + timedelta(seconds=70 + i)) for i in range(2)]
    return out


def search_alerts() -> list[dict[str, Any]]:
    """An unrelated fault at the same time: search's disk."""
    return [alert("DiskFull", "search", f"search-{i}", ONSET + timedelta(seconds=20 + i), "warning") for i in range(2)]


@pytest.fixture
def platform(broker_url: str, topic_prefix: str, tmp_path: Path) -> Iterator[Platform]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    asyncio.run(_load_topology(f"sqlite:///{data_dir / 'topology.sqlite'}"))
    started: list[WorkerProcess] = []
    http_port = free_port()
    env = worker_env(broker_url, topic_prefix, data_dir, ingest_http_port=http_port, ingest_grpc_port=free_port())
    ingestion = WorkerProcess.start("ingestion", env, tmp_path / "ingestion.log", http_port=free_port())
    started.append(ingestion)

    def start_correlation() -> WorkerProcess:
        # Ticks every second: checkpoints and publishing are driven by them as much as by input.
        env = worker_env(
            broker_url,
            topic_prefix,
            data_dir,
            correlate_tick_s=1,
            correlate_checkpoint_every=3,
            correlate_checkpoint_interval_s=1,
        )
        worker = WorkerProcess.start("correlation", env, tmp_path / "correlation.log", http_port=free_port())
        started.append(worker)
        return worker

    try:
        asyncio.run(ingestion.until_ready())
        yield Platform(
            broker_url, topic_prefix, data_dir, ingestion, f"http://127.0.0.1:{http_port}", start_correlation
        )
    finally:
        for worker in started:
            worker.stop()


async def _load_topology(url: str) -> None:
    store = open_topology_store(url)
    try:
        await store.upsert_services(
            Service(name, {"tier": "web" if name == "frontend" else "backend"}) for name in SERVICES
        )
        await store.upsert_dependencies(
            Dependency(a, b, frozenset({"file"}), ONSET - timedelta(days=1), ONSET) for a, b in CALLS
        )
    finally:
        await store.close()


def _by_lead_service(incidents: dict[str, IncidentRecord]) -> dict[str, IncidentRecord]:
    live = [i for i in incidents.values() if i.merged_into is None]
    out = {}
    for incident in live:
        lead = incident.lead
        assert lead is not None, f"incident {incident.id} has no lead"
        out[lead.service] = incident
    return out


def _two_incidents(incidents: dict[str, IncidentRecord]) -> bool:
    leads = _by_lead_service(incidents)
    cascade, search = leads.get("payment"), leads.get("search")
    return (
        cascade is not None
        and search is not None
        and len(cascade.members) >= 8  # 7 alerts and the anomaly
        and bool(cascade.changes)
        and len(search.members) == 2
    )


def _check_storm(incidents: dict[str, IncidentRecord]) -> None:
    leads = _by_lead_service(incidents)
    assert set(leads) == {"payment", "search"}, {s: [m.name for m in i.members] for s, i in leads.items()}
    cascade, search = leads["payment"], leads["search"]
    assert {m.service for m in cascade.members} == {"payment", "checkout", "frontend"}
    assert cascade.services[0] == "payment"
    lead = cascade.lead
    assert lead is not None and lead.name in {"HighLatency", "latency_p99_seconds"}
    # Why each joined: a reason with a rule and words for people on every member.
    for member in cascade.members:
        assert member.reason.rule and member.reason.text, member
    frontend = next(m for m in cascade.members if m.service == "frontend")
    assert frontend.reason.rule in {"topology", "same_service", "change"}, frontend.reason
    if frontend.reason.rule == "topology":
        assert frontend.reason.path[0] in {"payment", "checkout", "frontend"} and frontend.reason.path[-1] == "frontend"
    (change,) = cascade.changes
    assert change.service == "payment" and change.version == "v2.4.1" and 470 <= change.before_onset_s <= 480
    assert "v2.4.1" in change.text
    assert {m.service for m in search.members} == {"search"} and not search.changes
    fingerprints = [m.fingerprint for i in leads.values() for m in i.members]
    assert len(fingerprints) == len(set(fingerprints)), "a member is in two incidents"


async def _stored(data_dir: Path) -> dict[str, dict[str, Any]]:
    store = open_document_store(f"sqlite:///{data_dir / 'documents.sqlite'}")
    try:
        page = await store.query("incidents", limit=100)
        return {doc.id: doc.body for doc in page.documents}
    finally:
        await store.close()


def test_a_storm_becomes_two_explained_incidents(platform: Platform) -> None:
    correlation = platform.start_correlation()

    async def run() -> dict[str, IncidentRecord]:
        await correlation.until_ready()
        await platform.post_deployment("payment", "v2.4.1", ONSET - timedelta(minutes=8))
        storm = cascade_alerts() + search_alerts()
        await platform.post_alerts(storm[:5])
        await platform.post_alerts(storm[5:])
        await platform.post_alerts(storm)  # Alertmanager repeats a group: duplicates change nothing
        await platform.publish_anomalies([anomaly("latency_p99_seconds", "payment", ONSET - timedelta(seconds=5))])
        return await platform.incidents(_two_incidents, scaled(60))

    incidents = asyncio.run(run())
    _check_storm(incidents)

    async def archived() -> dict[str, dict[str, Any]] | None:
        stored = await _stored(platform.data_dir)
        live = {i.id: i for i in incidents.values()}
        ok = all(i in stored and stored[i]["revision"] >= live[i].revision for i in live)
        return stored if ok else None

    stored = asyncio.run(correlation.eventually(archived, scaled(30), "incidents in the document store"))
    cascade = _by_lead_service(incidents)["payment"]
    assert {m["fingerprint"] for m in stored[cascade.id]["members"]} == {m.fingerprint for m in cascade.members}

    # An operator acknowledges the incident and splits a member off it, through the aiops command.
    env = {
        "AIOPS_BROKER_URL": platform.broker_url,
        "AIOPS_TOPIC_PREFIX": platform.prefix,
        "AIOPS_DATA_DIR": str(platform.data_dir),
    }
    frontend = next(m for m in cascade.members if m.service == "frontend")
    acked = runner.invoke(cli.commands, ["incidents", "ack", cascade.id, "--note", "on it", "--by", "alice"], env=env)
    assert acked.exit_code == 0, acked.output
    split = runner.invoke(
        cli.commands, ["incidents", "split", cascade.id, frontend.fingerprint, "--by", "alice"], env=env
    )
    assert split.exit_code == 0, split.output

    def handled(latest: dict[str, IncidentRecord]) -> bool:
        now = latest.get(cascade.id)
        return (
            now is not None and now.status == IncidentStatus.ACKNOWLEDGED and now.member(frontend.fingerprint) is None
        )

    after = asyncio.run(platform.incidents(handled, scaled(60)))
    history = after[cascade.id].history
    assert any(h.status == IncidentStatus.ACKNOWLEDGED and h.by == "alice" and h.note == "on it" for h in history)
    # The split-off alert is not lost: it is in an incident of its own.
    assert any(i.member(frontend.fingerprint) is not None for i in after.values() if i.id != cascade.id)


def test_sigkill_mid_storm_gives_the_same_incidents_and_no_duplicates(platform: Platform) -> None:
    correlation = platform.start_correlation()
    storm = cascade_alerts() + search_alerts()

    async def first_half() -> dict[str, IncidentRecord]:
        await correlation.until_ready()
        await platform.post_deployment("payment", "v2.4.1", ONSET - timedelta(minutes=8))
        await platform.post_alerts(storm[:4])
        return await platform.incidents(lambda i: any(len(x.members) >= 3 for x in i.values()), scaled(60))

    before = asyncio.run(first_half())

    async def checkpointed() -> bool:
        # The restart must begin from a checkpoint and replay after it, not only from the log's start.
        async with httpx.AsyncClient(timeout=10) as client:
            text = (await client.get(correlation.probe_url + "/metrics")).text
        return any(
            line.startswith("aiops_correlation_checkpoints_total ") and float(line.split()[1]) >= 1
            for line in text.splitlines()
        )

    asyncio.run(correlation.eventually(checkpointed, scaled(30), "a checkpoint of the correlator"))
    correlation.kill()

    async def second_half() -> dict[str, IncidentRecord]:
        await platform.post_alerts(storm[4:])  # while no correlation worker runs: they wait on the topics
        await platform.publish_anomalies([anomaly("latency_p99_seconds", "payment", ONSET - timedelta(seconds=5))])
        restarted = platform.start_correlation()
        await restarted.until_ready()
        return await platform.incidents(_two_incidents, scaled(90))

    after = asyncio.run(second_half())
    _check_storm(after)
    # The incident opened before the kill is the one that grew after it: the same id, not a second incident.
    opened_before = {i.id for i in before.values()}
    assert _by_lead_service(after)["payment"].id in opened_before
    live = [i for i in after.values() if i.merged_into is None and i.members]
    assert len(live) == 2, [(i.id, i.title) for i in live]
