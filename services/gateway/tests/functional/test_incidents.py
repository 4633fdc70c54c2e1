"""The incidents API against a real gateway: the list's filters and pages, the detail with each part, root causes,
and lifecycle changes published to correlation and audited, with the refusals each route gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiops_common.broker.addresses import bootstrap_servers, free_port
from aiops_common.broker.publisher import Message
from aiops_common.documents import DocumentFilter
from aiops_common.schemas import (
    AnomalyRecord,
    AnomalySeverity,
    CauseKind,
    Evidence,
    EvidenceKind,
    IncidentCommand,
    IncidentMember,
    IncidentRecord,
    IncidentSeverity,
    IncidentStatus,
    JoinReason,
    LinkedChange,
    MemberKind,
    RankedCause,
    RcaResult,
    RcaStatus,
    StatusChange,
)
from aiops_common.testing.eventually import eventually
from aiops_common.topics import CORRELATION_EVENTS_KEY, Topics, TopicSpec
from aiops_common.topology import Change
from aiops_gateway.auth import Role
from aiops_gateway.testing import RunningGateway, start_gateway

pytestmark = pytest.mark.functional

STATUSES = list(IncidentStatus)
SEVERITIES = [IncidentSeverity.WARNING, IncidentSeverity.MAJOR, IncidentSeverity.CRITICAL]


def _member(
    fingerprint: str, service: str, at: datetime, kind: MemberKind = MemberKind.ALERT, rule: str = "seed"
) -> IncidentMember:
    return IncidentMember(
        fingerprint=fingerprint,
        kind=kind,
        name="HighLatency" if kind is MemberKind.ALERT else "red.latency_s",
        service=service,
        severity=IncidentSeverity.MAJOR,
        started_at=at,
        lead=rule == "seed",
        reason=JoinReason(rule=rule, text="" if rule == "seed" else f"{service} near the lead"),
        joined_at=at,
    )


def _incident(incident_id: str, started: datetime, **fields: Any) -> IncidentRecord:
    services = fields.pop("services", ["payment"])
    values: dict[str, Any] = {
        "id": incident_id,
        "revision": 1,
        "title": f"{services[0]} latency",
        "severity": IncidentSeverity.MAJOR,
        "services": services,
        "started_at": started,
        "updated_at": started + timedelta(minutes=1),
        "members": [_member(f"{incident_id}-lead", services[0], started)],
    }
    return IncidentRecord(**{**values, **fields})


async def _store(running: RunningGateway, *incidents: IncidentRecord, rca: dict[str, Any] | None = None) -> None:
    """Write incidents as the correlation service's archive does (the RCA service's ``rca`` summary beside)."""
    bodies = [(i.id, {**i.document(), **({"rca": rca} if rca else {})}) for i in incidents]
    await running.gateway.documents.upsert_many("incidents", bodies)


async def _published(running: RunningGateway, spec: TopicSpec, count: int) -> list[tuple[bytes | None, bytes]]:
    """(key, value) of the first ``count`` records of a topic of this test."""
    name = spec.full_name(running.settings.topic_prefix)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers(running.gateway.publisher.broker_url), enable_auto_commit=False
    )
    await consumer.start()
    records: list[tuple[bytes | None, bytes]] = []
    try:
        tps = [TopicPartition(name, p) for p in range(spec.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)

        async def enough() -> bool:
            batch = await consumer.getmany(*tps, timeout_ms=200)
            records.extend((m.key, m.value) for part in batch.values() for m in part if m.value is not None)
            return len(records) >= count

        await eventually(enough, timeout=30, what=f"{count} records on {name}")
    finally:
        await consumer.stop()
    return records


async def _audit(running: RunningGateway, subject_id: str) -> list[dict[str, Any]]:
    where = DocumentFilter(terms=(("subject_id", subject_id),))
    page = await running.gateway.documents.query("audit", where, oldest_first=True, limit=100)
    return [d.body for d in page.documents]


async def test_the_list_filters_and_pages_newest_first(running_gateway: RunningGateway) -> None:
    now = datetime.now(UTC)
    base = now - timedelta(hours=1)
    incidents = []
    for i in range(24):
        # The last four share one onset: pages must still resume after the right one (by id).
        started = base - timedelta(hours=min(i, 20))
        incidents.append(
            _incident(
                f"inc-{i:02d}",
                started,
                title=f"{'payment latency' if i % 3 == 0 else 'search errors'} {i}",
                summary="quiet since the rollback" if i % 5 == 0 else "",
                status=STATUSES[i % 4],
                severity=SEVERITIES[i % 3],
                services=["checkout", "payment"] if i % 2 else ["search"],
            )
        )
    rca = {"revision": 1, "causes": [{"service": "payment", "probability": 0.7, "kind": "latency", "rule": ""}]}
    await _store(running_gateway, *incidents[1:])
    await _store(running_gateway, incidents[0], rca=rca)
    newest = [i.id for i in sorted(incidents, key=lambda i: (i.started_at, i.id), reverse=True)]

    async def ids(client: Any, **params: Any) -> list[str]:
        answer = await client.get("/api/v1/incidents", params=params)
        assert answer.status_code == 200, answer.text
        return [entry["id"] for entry in answer.json()["incidents"]]

    async with await running_gateway.client(Role.VIEWER) as viewer:
        everything = await viewer.get("/api/v1/incidents")
        assert everything.status_code == 200, everything.text
        body = everything.json()
        assert [e["id"] for e in body["incidents"]] == newest and body["next_cursor"] is None
        first = body["incidents"][0]
        assert first["id"] == "inc-00" and first["top_cause"] == {
            "service": "payment",
            "probability": 0.7,
            "kind": "latency",
        }
        assert (first["member_count"], first["change_count"], first["revision"], first["status"]) == (1, 0, 1, "open")
        assert body["incidents"][1]["top_cause"] is None

        def expect(keep: Any) -> list[str]:
            return [i.id for i in sorted(incidents, key=lambda i: (i.started_at, i.id), reverse=True) if keep(i)]

        assert await ids(viewer, status="resolved") == expect(lambda i: i.status is IncidentStatus.RESOLVED)
        assert await ids(viewer, severity="critical", service="payment") == expect(
            lambda i: i.severity is IncidentSeverity.CRITICAL and "payment" in i.services
        )
        assert await ids(viewer, text="payment") == expect(lambda i: "payment" in i.title)
        assert await ids(viewer, text="rollback") == expect(lambda i: "rollback" in i.summary)
        assert await ids(viewer, since="390m") == expect(lambda i: i.started_at >= now - timedelta(minutes=390))
        window = {"since": (base - timedelta(hours=10)).isoformat(), "until": (base - timedelta(hours=4)).isoformat()}
        assert await ids(viewer, **window) == [f"inc-{i:02d}" for i in range(5, 11)]

        walked: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            params: dict[str, Any] = {"limit": 5, **({"cursor": cursor} if cursor else {})}
            page = (await viewer.get("/api/v1/incidents", params=params)).json()
            walked += [e["id"] for e in page["incidents"]]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert walked == newest and pages == 5

        for params, needle in (
            ({"status": "bogus"}, "acknowledged"),
            ({"severity": "huge"}, "critical"),
            ({"limit": 0}, "limit"),
            ({"limit": 501}, "limit"),
        ):
            refused = await viewer.get("/api/v1/incidents", params=params)
            assert refused.status_code == 422 and needle in refused.json()["error"], (params, refused.text)
        for params, needle in (
            ({"since": "yesterday"}, "not a duration"),
            ({"until": "99999999999w"}, "not a duration"),
            ({"since": "1h", "until": "2h"}, "is after until"),
            ({"cursor": "garbage"}, "not a cursor"),
            ({"cursor": f"{2**80}:inc-01"}, "not a cursor"),
        ):
            refused = await viewer.get("/api/v1/incidents", params=params)
            assert refused.status_code == 400 and needle in refused.json()["error"], (params, refused.text)
            assert refused.json()["request_id"]
    async with await running_gateway.client(None) as anonymous:
        assert (await anonymous.get("/api/v1/incidents")).status_code == 401


def _anomaly(anomaly_id: str, service: str, at: datetime) -> AnomalyRecord:
    return AnomalyRecord(
        id=anomaly_id,
        series_name="red.latency_s",
        series_key=f'red.latency_s{{service="{service}"}}',
        service=service,
        window_start=at,
        window_end=at + timedelta(seconds=10),
        value=1.8,
        score=0.97,
        lower=0.1,
        upper=0.4,
        severity=AnomalySeverity.CRITICAL,
        detector="cascade",
        detected_at=at + timedelta(seconds=10),
    )


def _rca(incident_id: str, revision: int, at: datetime, top: str) -> RcaResult:
    evidence = Evidence(kind=EvidenceKind.CHANGE, text=f"{top} v2 deployed 8 min before onset", weight=2.1)
    return RcaResult(
        id=f"rca-{incident_id}-{revision}",
        incident_id=incident_id,
        incident_revision=revision,
        at=at,
        analyzed_at=at + timedelta(seconds=5),
        status=RcaStatus.OK,
        services=["payment", "checkout", "db"],
        causes=[
            RankedCause(service=top, probability=0.7, kind=CauseKind.DEPLOYMENT, evidence=[evidence]),
            RankedCause(service="db", probability=0.3),
        ],
        summary=f"{top} most likely",
    )


async def _detail_incident(running: RunningGateway) -> tuple[IncidentRecord, datetime]:
    """An incident with every part its detail shows, and the records around it in each store."""
    gw = running.gateway
    onset = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)  # the topology store keeps ms
    incident = _incident(
        "inc-detail",
        onset,
        revision=2,
        services=["payment", "checkout"],
        members=[
            _member("alert-lead", "payment", onset),
            _member("an-docs", "checkout", onset + timedelta(seconds=40), MemberKind.ANOMALY, "topology"),
            _member("an-feedback", "payment", onset + timedelta(seconds=50), MemberKind.ANOMALY, "same_service"),
            _member("an-gone", "payment", onset + timedelta(seconds=60), MemberKind.ANOMALY, "same_service"),
        ],
        changes=[
            LinkedChange(
                id="chg-own",
                service="payment",
                version="v2",
                at=onset - timedelta(minutes=8),
                before_onset_s=480,
                text="payment v2 deployed 8 min before onset",
            )
        ],
        history=[
            StatusChange(status=IncidentStatus.ACKNOWLEDGED, at=onset + timedelta(minutes=3), by="ana", note="on it")
        ],
        status=IncidentStatus.ACKNOWLEDGED,
    )
    await _store(running, incident)
    for result in (
        _rca("inc-detail", 1, onset, "checkout"),
        _rca("inc-detail", 2, onset + timedelta(minutes=1), "payment"),
        _rca("inc-other", 7, onset + timedelta(minutes=2), "search"),
    ):
        await gw.documents.upsert("rca_results", result.id, result.document())
    docs_anomaly = _anomaly("an-docs", "checkout", onset + timedelta(seconds=40))
    await gw.documents.upsert("anomalies", docs_anomaly.id, docs_anomaly.model_dump(mode="json"))
    await gw.feedback.record_anomaly(_anomaly("an-feedback", "payment", onset + timedelta(seconds=50)))
    await gw.topology.add_changes(
        [
            Change(id="chg-own", service="payment", at=onset - timedelta(minutes=8), description="a second copy"),
            Change(id="chg-before", service="checkout", at=onset - timedelta(minutes=20), attributes={"version": "c7"}),
            Change(id="chg-early", service="payment", at=onset - timedelta(minutes=45)),
            Change(id="chg-other", service="search", at=onset - timedelta(minutes=5)),
            Change(id="chg-after", service="payment", at=onset + timedelta(minutes=10), description="hotfix"),
        ]
    )
    lines = [
        ("log-pay-error", "payment", "error", 1),
        ("log-check-warn", "checkout", "warn", -3),
        ("log-pay-info", "payment", "info", -10),
        ("log-pay-late", "payment", "error", 20),
        ("log-search", "search", "error", 0),
        ("log-check-debug", "checkout", "debug", 14),
    ]
    await gw.documents.upsert_many(
        "logs",
        [
            (
                doc_id,
                {
                    "at": (onset + timedelta(minutes=minute)).isoformat(),
                    "services": [service],
                    "severity": severity,
                    "source": f"{service}-1",
                    "message": f"{doc_id} happened",
                },
            )
            for doc_id, service, severity, minute in lines
        ],
    )
    return incident, onset


async def test_the_detail_shows_members_analysis_changes_logs_anomalies_and_timeline(
    running_gateway: RunningGateway,
) -> None:
    incident, onset = await _detail_incident(running_gateway)
    async with await running_gateway.client(Role.VIEWER) as viewer:
        answer = await viewer.get("/api/v1/incidents/inc-detail")
        assert answer.status_code == 200, answer.text
        detail = answer.json()
        assert IncidentRecord.model_validate(detail["incident"]) == incident
        assert detail["incident"]["members"][1]["reason"]["rule"] == "topology"
        rca = RcaResult.model_validate(detail["rca"])
        assert (rca.incident_revision, rca.causes[0].service) == (2, "payment")
        assert rca.causes[0].evidence[0].text == "payment v2 deployed 8 min before onset"
        assert [(c["id"], c["source"]) for c in detail["changes"]] == [
            ("chg-before", "topology"),
            ("chg-own", "correlation"),
            ("chg-after", "topology"),
        ]
        assert detail["changes"][0]["version"] == "c7" and detail["changes"][2]["before_onset_s"] == -600.0
        assert [line["id"] for line in detail["logs"]] == [
            "log-check-warn",
            "log-pay-error",
            "log-pay-info",
            "log-check-debug",
        ]
        assert detail["logs"][1]["message"] == "log-pay-error happened"
        assert [(a["id"], a["lower"], a["upper"]) for a in detail["anomalies"]] == [
            ("an-docs", 0.1, 0.4),
            ("an-feedback", 0.1, 0.4),
        ]
        assert detail["actions"] == [] and detail["missing"] == []  # no execution for it
        timeline = detail["timeline"]
        assert [e["at"] for e in timeline] == sorted(e["at"] for e in timeline)
        assert [e["kind"] for e in timeline].count("member") == 4
        assert {"change", "status", "rca"} <= {e["kind"] for e in timeline}
        assert any(e["text"] == "acknowledged by ana: on it" for e in timeline)

        rca_answer = await viewer.get("/api/v1/incidents/inc-detail/rca")
        assert rca_answer.status_code == 200 and rca_answer.json() == detail["rca"]
        by_query = await viewer.get("/api/v1/rca", params={"incident_id": "inc-detail"})
        assert by_query.status_code == 200 and by_query.json()["id"] == "rca-inc-detail-2"

        for path in ("/api/v1/incidents/inc-nope", "/api/v1/incidents/inc-nope/rca", "/api/v1/rca?incident_id=x"):
            missing = await viewer.get(path)
            assert missing.status_code == 404 and missing.json()["error"], path
    await _store(running_gateway, _incident("inc-fresh", onset, services=["ledger"]))
    async with await running_gateway.client(Role.VIEWER) as viewer:
        fresh = (await viewer.get("/api/v1/incidents/inc-fresh")).json()
        assert fresh["rca"] is None and fresh["anomalies"] == [] and fresh["changes"] == []
        assert (await viewer.get("/api/v1/incidents/inc-fresh/rca")).status_code == 404


async def test_a_topology_store_that_is_down_empties_only_the_changes_it_adds(
    tmp_path: Path, broker_url: str, topic_prefix: str
) -> None:
    # Nothing listens on this port: every topology read is refused.
    servers, running = await start_gateway(
        tmp_path, broker_url, topic_prefix, topology_url=f"bolt://127.0.0.1:{free_port()}"
    )
    try:
        onset = datetime.now(UTC) - timedelta(hours=1)
        own = LinkedChange(id="chg-own", service="payment", at=onset - timedelta(minutes=8), before_onset_s=480)
        await _store(running, _incident("inc-1", onset, changes=[own]))
        async with await running.client(Role.VIEWER) as viewer:
            answer = await viewer.get("/api/v1/incidents/inc-1")
        assert answer.status_code == 200, answer.text
        detail = answer.json()
        assert [c["id"] for c in detail["changes"]] == ["chg-own"]
        assert len(detail["missing"]) == 1 and detail["missing"][0].startswith("topology: ")
        assert detail["incident"]["id"] == "inc-1" and detail["logs"] == []
    finally:
        await servers.stop()


async def test_lifecycle_changes_are_sent_to_correlation_and_audited(running_gateway: RunningGateway) -> None:
    onset = datetime.now(UTC) - timedelta(hours=1)
    await _store(
        running_gateway,
        _incident("inc-open", onset, services=["payment", "checkout"]),
        _incident("inc-resolved", onset, status=IncidentStatus.RESOLVED, resolved_at=onset + timedelta(hours=1)),
        _incident("inc-mitigated", onset, status=IncidentStatus.MITIGATED),
    )
    async with await running_gateway.client(Role.OPERATOR) as operator:
        acked = await operator.post("/api/v1/incidents/inc-open/acknowledge", json={"note": "looking at payment"})
        assert acked.status_code == 202, acked.text
        assert acked.json()["incident_id"] == "inc-open" and acked.json()["status"] == "acknowledged"
        assert acked.json()["by"] == "test-operator"
        reopened = await operator.post("/api/v1/incidents/inc-resolved/reopen", json={"note": "it is back"})
        assert reopened.status_code == 202 and reopened.json()["status"] == "open", reopened.text
        resolved = await operator.post("/api/v1/incidents/inc-mitigated/resolve", json={})
        assert resolved.status_code == 202 and resolved.json()["status"] == "resolved", resolved.text

        for path, needle in (
            ("/api/v1/incidents/inc-open/reopen", "already open"),
            ("/api/v1/incidents/inc-resolved/acknowledge", "reopen it first"),
            ("/api/v1/incidents/inc-mitigated/mitigate", "already mitigated"),
        ):
            conflict = await operator.post(path, json={"note": ""})
            assert conflict.status_code == 409 and needle in conflict.json()["error"], (path, conflict.text)
        unknown = await operator.post("/api/v1/incidents/inc-nope/resolve", json={"note": ""})
        assert unknown.status_code == 404
        long_note = await operator.post("/api/v1/incidents/inc-open/mitigate", json={"note": "x" * 2001})
        assert long_note.status_code == 422 and "note" in long_note.json()["error"]
        surrogate = await operator.post(
            "/api/v1/incidents/inc-open/mitigate",
            content=b'{"note": "\\ud800"}',
            headers={"Content-Type": "application/json"},
        )
        assert surrogate.status_code == 422 and "note" in surrogate.json()["error"], (
            surrogate.text
        )  # no record carries it
    async with await running_gateway.client(Role.VIEWER) as viewer:
        refused = await viewer.post("/api/v1/incidents/inc-open/mitigate", json={"note": ""})
        assert refused.status_code == 403

    records = await _published(running_gateway, Topics.CORRELATION_EVENTS, 3)
    assert {key for key, _ in records} == {CORRELATION_EVENTS_KEY}
    commands = [IncidentCommand.decode(value) for _, value in records]
    assert [(c.incident_id, c.status, c.by, c.note) for c in commands] == [
        ("inc-open", IncidentStatus.ACKNOWLEDGED, "test-operator", "looking at payment"),
        ("inc-resolved", IncidentStatus.OPEN, "test-operator", "it is back"),
        ("inc-mitigated", IncidentStatus.RESOLVED, "test-operator", ""),
    ]
    assert commands[0].at.isoformat() == acked.json()["at"].replace("Z", "+00:00")

    entries = await _audit(running_gateway, "inc-open")
    assert [(e["action"], e["actor"], e["message"]) for e in entries] == [
        ("incident.acknowledge", "test-operator", "looking at payment")
    ]
    assert entries[0]["services"] == ["payment", "checkout"] and entries[0]["details"]["was"] == "open"
    assert [e["action"] for e in await _audit(running_gateway, "inc-resolved")] == ["incident.reopen"]


async def test_a_list_answer_is_served_again_until_an_incident_is_published(
    tmp_path: Path, broker_url: str, topic_prefix: str
) -> None:
    servers, running = await start_gateway(tmp_path, broker_url, topic_prefix, gateway_list_cache_s=300.0)
    try:
        gw = running.gateway
        await eventually(lambda: gw.live.connected, timeout=60, what="the live feed following the broker")
        now = datetime.now(UTC)
        await _store(running, _incident("inc-a", now - timedelta(minutes=5)))
        async with await running.client(Role.VIEWER) as viewer:
            first = (await viewer.get("/api/v1/incidents")).json()
            assert [i["id"] for i in first["incidents"]] == ["inc-a"]
            # Written straight to the store, which the feed does not see: the kept answer is served.
            later = _incident("inc-b", now - timedelta(minutes=1))
            await _store(running, later)
            assert (await viewer.get("/api/v1/incidents")).json() == first
            other = (await viewer.get("/api/v1/incidents", params={"limit": 10})).json()
            assert [i["id"] for i in other["incidents"]] == ["inc-b", "inc-a"]  # another query is read anew
            # Published, as correlation does with every change: the feed empties the cache in this replica.
            await gw.publisher.publish([Message(Topics.INCIDENTS, later.encode(), key=later.id.encode())])

            async def shows_both() -> bool:
                answer = (await viewer.get("/api/v1/incidents")).json()
                return [i["id"] for i in answer["incidents"]] == ["inc-b", "inc-a"]

            await eventually(shows_both, timeout=60, what="the published incident in the list")
    finally:
        await servers.stop()
