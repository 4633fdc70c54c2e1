"""The root-cause agent's parts against real stores: which revisions are analysed, the result's status, the
writes to the document store (onto the incident without overwriting a newer analysis), and a store that is down."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from aiops_common.broker import free_port
from aiops_common.documents import DocumentStore, open_document_store
from aiops_common.schemas import (
    IncidentMember,
    IncidentRecord,
    IncidentSeverity,
    IncidentStatus,
    JoinReason,
    MemberKind,
    RankedCause,
    RcaStatus,
    rca_result_id,
)
from aiops_rca.agents.root_cause import RootCause, attach_to_incident, incident_summary, result_of
from aiops_rca.case import Case
from aiops_rca.engine import Analysis
from aiops_rca.gather import Sources
from aiops_rca.settings import RcaSettings
from prometheus_client import REGISTRY

pytestmark = pytest.mark.functional

ONSET = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def incident(revision: int, services: list[str], **fields: object) -> IncidentRecord:
    members = [
        IncidentMember(
            fingerprint=f"f-{service}",
            kind=MemberKind.ANOMALY,
            name="red.latency_s:value_10s",
            service=service,
            started_at=ONSET + timedelta(seconds=10 * i),
            reason=JoinReason(rule="seed" if i == 0 else "topology"),
            joined_at=ONSET,
        )
        for i, service in enumerate(services)
    ]
    return IncidentRecord.model_validate(
        {
            "id": "inc-1",
            "revision": revision,
            "title": "slow",
            "severity": IncidentSeverity.MAJOR,
            "services": services,
            "started_at": ONSET,
            "updated_at": ONSET + timedelta(minutes=revision),
            "members": members,
            **fields,
        }
    )


def analysis(status: RcaStatus = RcaStatus.OK) -> Analysis:
    causes = [RankedCause(service="payment", probability=0.8), RankedCause(service="checkout", probability=0.2)]
    return Analysis(causes if status != RcaStatus.NO_ANOMALY else [], status, None, "payment first")


def dropped(reason: str) -> float:
    labels = {"agent": "root_cause", "reason": reason}
    return REGISTRY.get_sample_value("aiops_agent_dropped_records_total", labels) or 0.0


def agent(documents: DocumentStore | None = None) -> RootCause:
    return RootCause(RcaSettings(), Sources(None, None, None, None), documents, None, retry_delays_s=(0.01, 0.02))


@pytest.fixture
async def documents(tmp_path: Path) -> AsyncIterator[DocumentStore]:
    store = open_document_store(f"sqlite:///{tmp_path / 'documents.sqlite'}")
    yield store
    await store.close()


def test_the_newest_revision_of_each_incident_is_analysed_when_new_or_grown() -> None:
    rc = agent()
    first = [incident(1, ["payment"]).encode(), incident(2, ["payment", "checkout"]).encode(), b"not a record"]
    assert [(i.id, i.revision) for i in rc.choose(first)] == [("inc-1", 2)]
    rc.analysed["inc-1"], rc.shapes["inc-1"] = 2, (2, frozenset({"payment", "checkout"}))
    # The same members again (a status change): not analysed; a replayed older revision: not analysed.
    acked = incident(3, ["payment", "checkout"], status=IncidentStatus.ACKNOWLEDGED)
    assert rc.choose([acked.encode(), incident(2, ["payment", "checkout"]).encode()]) == []
    assert rc.wanted(acked) == "no_new_members"
    assert rc.wanted(incident(2, ["payment", "checkout"])) == "analysed"
    assert rc.wanted(incident(4, ["payment", "checkout", "frontend"])) == ""
    assert rc.wanted(incident(4, ["payment", "checkout"], status=IncidentStatus.RESOLVED)) == "resolved"
    assert rc.wanted(incident(4, ["payment", "checkout", "db"], merged_into="inc-0")) == "merged"
    # After a restart only the revision is known: a newer one is analysed once.
    restarted = agent()
    restarted.analysed["inc-1"] = 2
    assert restarted.wanted(acked) == ""


def test_a_result_is_degraded_when_a_source_was_missing() -> None:
    now = datetime.now(UTC)
    case = Case(ts_ms=np.zeros(0, dtype=np.int64), series={}, services=["payment"])
    ok = result_of(incident(2, ["payment"]), case, analysis(), 12.5, now)
    assert ok.id == rca_result_id("inc-1", 2) and ok.status == RcaStatus.OK and ok.elapsed_ms == 12.5
    assert ok.at == ONSET + timedelta(minutes=2) and ok.onset == ONSET and ok.analyzed_at == now
    case.missing.append("tsdb: ConnectError: refused")
    degraded = result_of(incident(2, ["payment"]), case, analysis(), 1.0, now)
    assert degraded.status == RcaStatus.DEGRADED and degraded.missing == ["tsdb: ConnectError: refused"]
    assert degraded.causes and degraded.top is not None and degraded.top.service == "payment"
    blind = result_of(incident(2, ["payment"]), case, analysis(RcaStatus.NO_ANOMALY), 1.0, now)
    assert blind.status == RcaStatus.DEGRADED  # "nothing moved" is not known without the series


async def test_results_go_to_rca_results_and_onto_the_incident(documents: DocumentStore) -> None:
    rc = agent(documents)
    case = Case(ts_ms=np.zeros(0, dtype=np.int64), series={}, services=["payment"])
    now = datetime.now(UTC)
    second = incident(2, ["payment", "checkout"])
    # Not archived yet: the incident is written with the analysed revision's body.
    assert await rc.store([(result_of(second, case, analysis(), 1.0, now), second)]) == 1
    stored = await documents.get("incidents", "inc-1")
    assert stored is not None and stored.body["revision"] == 2 and stored.body["rca"]["revision"] == 2
    assert stored.body["rca"]["causes"][0] == {"service": "payment", "probability": 0.8, "kind": "unknown", "rule": ""}
    assert (await documents.get("rca_results", rca_result_id("inc-1", 2))) is not None
    # The archive wrote a newer revision meanwhile: its body stays, the analysis is set on it.
    third = incident(3, ["payment", "checkout", "frontend"])
    await documents.upsert("incidents", "inc-1", third.document())
    assert await rc.store([(result_of(third, case, analysis(), 1.0, now), third)]) == 1
    stored = await documents.get("incidents", "inc-1")
    assert stored is not None and stored.body["revision"] == 3 and stored.body["rca"]["revision"] == 3
    # An older analysis arriving late does not replace a newer one on the incident.
    older = result_of(second, case, analysis(), 1.0, now)
    assert not await attach_to_incident(documents, second, incident_summary(older))
    stored = await documents.get("incidents", "inc-1")
    assert stored is not None and stored.body["rca"]["revision"] == 3


async def test_a_document_store_that_is_down_is_retried_then_counted() -> None:
    down = open_document_store(f"elasticsearch://127.0.0.1:{free_port()}")  # nothing listens there
    try:
        rc = agent(down)
        case = Case(ts_ms=np.zeros(0, dtype=np.int64), series={}, services=["payment"])
        before = dropped("store_unavailable")
        now = datetime.now(UTC)
        pairs = [
            (result_of(incident(r, ["payment"]), case, analysis(), 1.0, now), incident(r, ["payment"])) for r in (1, 2)
        ]
        assert await rc.store(pairs) == 0
        assert dropped("store_unavailable") == before + 2
    finally:
        await down.close()


async def test_a_locked_document_store_holds_the_writes_not_the_analysis(
    documents: DocumentStore, tmp_path: Path
) -> None:
    rc = agent(documents)
    rc.stale = False  # nothing on rca.results to read: no broker here
    await documents.upsert("incidents", "other", incident(1, ["db"]).document())  # the file and its tables exist
    acked: list[str] = []

    async def ack(token: object) -> None:
        acked.append(str(token))

    rc.writes = asyncio.Queue(maxsize=4)
    writer = asyncio.create_task(rc.write_behind())
    holder = sqlite3.connect(tmp_path / "documents.sqlite", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another writer holds the store's lock
    try:
        rc.hold([(incident(1, ["payment"]).encode(), "r1")], now_s=0.0)
        first = await asyncio.wait_for(rc.flush(ack, now_s=1000.0), 10)
        # The first batch's writes wait on the lock; the next revision is analysed all the same.
        rc.hold([(incident(2, ["payment", "checkout"]).encode(), "r2")], now_s=1000.0)
        second = await asyncio.wait_for(rc.flush(ack, now_s=2000.0), 10)
        assert [r.incident_revision for r in first + second] == [1, 2] and rc.analysed == {"inc-1": 2}
        assert acked == []  # nothing acknowledged before it is stored: a restart reads both again
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    await asyncio.wait_for(rc.writes.join(), 30)
    assert acked == ["r1", "r2"]
    stored = await documents.get("incidents", "inc-1")
    assert stored is not None and stored.body["rca"]["revision"] == 2
    assert await documents.get("rca_results", rca_result_id("inc-1", 1)) is not None
    writer.cancel()
