"""Executions and approvals through the API against a real gateway: executions read from the document store
(list, filters, pages, detail), approvals and rejections checked against the stored execution, published to
``approvals`` keyed by the execution and audited; every refusal sends nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiops_common.broker.addresses import bootstrap_servers
from aiops_common.documents import DocumentFilter
from aiops_common.schemas import (
    ApprovalDecision,
    ApprovalRecord,
    BlastRadius,
    Decision,
    ExecutionRecord,
    ExecutionStatus,
    IncidentMember,
    IncidentRecord,
    IncidentSeverity,
    JoinReason,
    MemberKind,
    StepRecord,
    StepState,
    Transition,
    VerificationRecord,
    execution_document,
    execution_id,
)
from aiops_common.topics import Topics
from aiops_gateway.auth import Role
from aiops_gateway.testing import RunningGateway

pytestmark = pytest.mark.functional

NOW = datetime.now(UTC).replace(microsecond=0)


def execution(
    incident_id: str,
    runbook_id: str,
    *,
    attempt: int = 1,
    status: ExecutionStatus = ExecutionStatus.PENDING_APPROVAL,
    requested_by: str = "action",
    approvals: tuple[str, ...] = (),
    required: int = 1,
    expires_in: timedelta | None = timedelta(minutes=30),
    requested_ago: timedelta = timedelta(minutes=5),
    services: tuple[str, ...] = ("payment",),
) -> ExecutionRecord:
    """An execution as the action service keeps it: proposed with its dry run and blast radius."""
    requested = NOW - requested_ago
    step = StepRecord(
        name="restart",
        kind="kubernetes",
        action="rollout_restart",
        arguments={"namespace": "shop", "deployment": services[0]},
    )
    return ExecutionRecord(
        id=execution_id(incident_id, runbook_id, attempt),
        incident_id=incident_id,
        attempt=attempt,
        runbook_id=runbook_id,
        title=f"Restart {services[0]}",
        risk="medium",
        cause_service=services[0],
        services=list(services),
        parameters={"deployment": services[0]},
        blast_radius=BlastRadius(
            services=list(services),
            targets=[services[0]],
            pods=3,
            environment="prod",
            high=required > 1,
            reasons=["3 callers"] if required > 1 else [],
        ),
        required_approvals=required,
        policy=f"{required} approver(s): blast radius {'high' if required > 1 else 'contained'}",
        requested_by=requested_by,
        requested_at=requested,
        expires_at=None if expires_in is None else NOW + expires_in,
        approvals=[Decision(by=name, role="approver", decision="approve", at=requested) for name in approvals],
        status=status,
        steps=[step],
        dry_run=[
            step.model_copy(
                update={"state": StepState.OK, "summary": "would restart shop/payment", "output": "PATCH …"}
            )
        ],
        verification=VerificationRecord(
            series="http_p95_latency_s", match={"service": services[0]}, within_s=300, for_s=60
        ),
        updated_at=requested,
        history=[Transition(at=requested, status="pending_approval", by=requested_by, note="proposed")],
    )


async def store(running: RunningGateway, *records: ExecutionRecord) -> None:
    await running.gateway.documents.upsert_many("executions", [(r.id, execution_document(r)) for r in records])
    await running.gateway.documents.refresh("executions")


async def published(running: RunningGateway) -> list[tuple[bytes | None, ApprovalRecord]]:
    """(key, record) of everything on this test's ``approvals`` topic, read to its end (publishes are
    acknowledged before the gateway answers, so what an answer sent is there)."""
    name = Topics.APPROVALS.full_name(running.settings.topic_prefix)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers(running.gateway.publisher.broker_url), enable_auto_commit=False
    )
    await consumer.start()
    found: list[tuple[bytes | None, ApprovalRecord]] = []
    try:
        tps = [TopicPartition(name, p) for p in range(Topics.APPROVALS.partitions)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        while True:
            batch = await consumer.getmany(*tps, timeout_ms=500)
            for records in batch.values():
                found.extend((m.key, ApprovalRecord.decode(m.value)) for m in records if m.value is not None)
            if not batch and all([await consumer.position(tp) >= ends[tp] for tp in tps]):
                return found
    finally:
        await consumer.stop()


async def audited(running: RunningGateway) -> list[dict[str, Any]]:
    page = await running.gateway.documents.query("audit", DocumentFilter(), oldest_first=True, limit=500)
    return sorted((d.body for d in page.documents), key=lambda body: int(body["seq"]))


async def test_executions_are_listed_newest_first_filtered_paged_and_shown_whole(
    running_gateway: RunningGateway,
) -> None:
    records = [
        execution("inc-a", "restart-service", requested_ago=timedelta(minutes=9)),
        execution(
            "inc-a",
            "rollback-deployment",
            status=ExecutionStatus.SUCCEEDED,
            expires_in=None,
            requested_ago=timedelta(minutes=7),
        ),
        execution("inc-b", "restart-service", services=("cart", "checkout"), requested_ago=timedelta(minutes=5)),
        execution(
            "inc-b",
            "scale-service",
            status=ExecutionStatus.REJECTED,
            services=("cart",),
            requested_ago=timedelta(minutes=3),
        ),
    ]
    await store(running_gateway, *records)
    ids = [r.id for r in records]
    async with await running_gateway.client(Role.VIEWER) as viewer:
        everything = await viewer.get("/api/v1/executions")
        assert everything.status_code == 200, everything.text
        assert [e["id"] for e in everything.json()["executions"]] == ids[::-1]
        assert everything.json()["next_cursor"] is None

        async def listed(path: str, **params: Any) -> list[str]:
            answer = await viewer.get(path, params=params)
            assert answer.status_code == 200, (params, answer.text)
            return [e["id"] for e in answer.json()["executions"]]

        assert await listed("/api/v1/executions", incident_id="inc-a") == [ids[1], ids[0]]
        assert await listed("/api/v1/executions", status="rejected") == [ids[3]]
        assert await listed("/api/v1/executions", service="checkout") == [ids[2]]
        assert await listed("/api/v1/executions", service="cart", status="pending_approval") == [ids[2]]
        assert await listed("/api/v1/executions", incident_id="inc-nope") == []
        assert await listed("/api/v1/approvals") == [ids[2], ids[0]]
        assert await listed("/api/v1/approvals", incident_id="inc-a") == [ids[0]]
        assert await listed("/api/v1/approvals", service="cart") == [ids[2]]

        pages: list[str] = []
        cursor = None
        for _ in range(3):
            params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = (await viewer.get("/api/v1/executions", params=params)).json()
            pages.extend(e["id"] for e in page["executions"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert pages == ids[::-1]

        # the incident page's detail carries the incident's executions, newest first
        started = datetime.now(UTC) - timedelta(minutes=20)
        member = IncidentMember(
            fingerprint="fp-a",
            kind=MemberKind.ALERT,
            name="HighLatency",
            service="payment",
            started_at=started,
            lead=True,
            reason=JoinReason(rule="seed"),
            joined_at=started,
        )
        inc_a = IncidentRecord(
            id="inc-a",
            revision=1,
            title="payment latency",
            severity=IncidentSeverity.MAJOR,
            services=["payment"],
            started_at=started,
            updated_at=started,
            members=[member],
        )
        await running_gateway.gateway.documents.upsert("incidents", "inc-a", inc_a.document())
        shown = await viewer.get("/api/v1/incidents/inc-a")
        assert shown.status_code == 200, shown.text
        assert [e["id"] for e in shown.json()["actions"]] == [ids[1], ids[0]]

        detail = await viewer.get(f"/api/v1/executions/{ids[0]}")
        assert detail.status_code == 200, detail.text
        body = detail.json()
        assert ExecutionRecord.model_validate(body) == records[0]
        assert body["dry_run"][0]["summary"] == "would restart shop/payment"
        assert body["blast_radius"]["pods"] == 3 and body["verification"]["series"] == "http_p95_latency_s"
        assert body["history"][0]["note"] == "proposed"

        for path, params, status in (
            ("/api/v1/executions/exe-unknown", {}, 404),
            ("/api/v1/executions", {"status": "sleeping"}, 422),
            ("/api/v1/executions", {"limit": 0}, 422),
            ("/api/v1/executions", {"cursor": "not-a-cursor"}, 400),
            ("/api/v1/approvals", {"cursor": "not-a-cursor"}, 400),
        ):
            answer = await viewer.get(path, params=params)
            assert answer.status_code == status and answer.json()["error"], (path, params, answer.text)
    async with await running_gateway.client(None) as anonymous:
        for path in ("/api/v1/executions", f"/api/v1/executions/{ids[0]}", "/api/v1/approvals"):
            assert (await anonymous.get(path)).status_code == 401


async def test_approvals_and_rejections_are_published_keyed_by_execution_and_audited(
    running_gateway: RunningGateway,
) -> None:
    single = execution("inc-a", "restart-service", requested_by="test-operator")
    double = execution("inc-b", "rollback-deployment", required=2, approvals=("alice",), services=("cart", "checkout"))
    doomed = execution("inc-c", "scale-service", requested_by="test-approver")  # its requester withdraws it
    await store(running_gateway, single, double, doomed)
    async with await running_gateway.client(Role.APPROVER) as approver:
        first = await approver.post(f"/api/v1/approvals/{single.id}/approve", json={"comment": "looks safe"})
        assert first.status_code == 202, first.text
        assert first.json() == {
            "execution_id": single.id,
            "decision": "approve",
            "status": "submitted",
            "approvals_needed": 0,
        }
        second = await approver.post(f"/api/v1/approvals/{double.id}/approve", json={})
        assert second.status_code == 202, second.text
        assert second.json()["approvals_needed"] == 0  # alice's and this one: the two it needs
        third = await approver.post(
            f"/api/v1/approvals/{doomed.id}/reject", json={"comment": "  not during the sale  "}
        )
        assert third.status_code == 202, third.text
        assert (third.json()["decision"], third.json()["approvals_needed"]) == ("reject", 1)
        request_ids = [a.headers["x-request-id"] for a in (first, second, third)]

    sent = await published(running_gateway)
    assert [(key, r.decision, r.execution_id, r.comment) for key, r in sent] == [
        (single.id.encode(), ApprovalDecision.APPROVE, single.id, "looks safe"),
        (double.id.encode(), ApprovalDecision.APPROVE, double.id, ""),
        (doomed.id.encode(), ApprovalDecision.REJECT, doomed.id, "not during the sale"),
    ]
    for (_, record), request_id in zip(sent, request_ids, strict=True):
        assert (record.by, record.role, record.via, record.request_id) == (
            "test-approver",
            "approver",
            "api",
            request_id,
        )
        assert (record.incident_id, record.runbook_id, record.parameters) == ("", "", {})
        assert abs((record.at - datetime.now(UTC)).total_seconds()) < 300

    entries = await audited(running_gateway)
    assert [(e["action"], e["subject_id"], e["actor"], e["details"]["execution_id"]) for e in entries] == [
        ("execution.approve", "inc-a", "test-approver", single.id),
        ("execution.approve", "inc-b", "test-approver", double.id),
        ("execution.reject", "inc-c", "test-approver", doomed.id),
    ]
    assert entries[1]["services"] == ["cart", "checkout"]
    assert entries[2]["message"] == "not during the sale"
    assert [e["details"]["approval_id"] for e in entries] == [r.id for _, r in sent]


async def test_decisions_the_policy_would_refuse_are_refused_early_and_nothing_is_sent(
    running_gateway: RunningGateway,
) -> None:
    own = execution("inc-a", "restart-service", requested_by="test-approver")
    approved_once = execution("inc-b", "rollback-deployment", required=2, approvals=("test-approver",))
    done = execution("inc-c", "restart-service", status=ExecutionStatus.RUNNING, approvals=("alice",))
    stale = execution("inc-d", "restart-service", expires_in=timedelta(minutes=-1))
    fine = execution("inc-e", "restart-service")
    moved = execution("inc-f", "restart-service", status=ExecutionStatus.SUPERSEDED, approvals=("alice",))
    await store(running_gateway, own, approved_once, done, stale, fine, moved)
    refused = [
        ("approve", own.id, {"comment": "mine"}, 403, "a requester never approves its own request"),
        ("approve", approved_once.id, {}, 409, "already approved"),
        ("approve", done.id, {}, 409, "is running, not pending_approval"),
        ("reject", done.id, {"comment": "too late"}, 409, "is running"),
        ("approve", stale.id, {}, 409, "expired at"),
        ("approve", moved.id, {}, 409, f"execution {moved.id} is superseded, not pending_approval: nothing to decide"),
        ("approve", "exe-unknown", {}, 404, "no execution"),
        ("reject", "exe-unknown", {"comment": "x"}, 404, "no execution"),
        ("reject", fine.id, {}, 400, "a rejection needs a comment"),
        ("reject", fine.id, {"comment": "   "}, 400, "a rejection needs a comment"),
        ("approve", fine.id, {"comment": "c" * 2001}, 422, "comment"),
        ("approve", fine.id, {"note": "unknown field"}, 422, "note"),
    ]
    async with await running_gateway.client(Role.APPROVER) as approver:
        for verb, exec_id, body, status, needle in refused:
            answer = await approver.post(f"/api/v1/approvals/{exec_id}/{verb}", json=body)
            assert answer.status_code == status and needle in answer.json()["error"], (verb, exec_id, answer.text)
    for role in (Role.VIEWER, Role.OPERATOR):
        async with await running_gateway.client(role) as client:
            for verb in ("approve", "reject"):
                answer = await client.post(f"/api/v1/approvals/{fine.id}/{verb}", json={"comment": "x"})
                assert answer.status_code == 403 and "needs approver" in answer.json()["error"], answer.text
    async with await running_gateway.client(None) as anonymous:
        assert (await anonymous.post(f"/api/v1/approvals/{fine.id}/approve", json={})).status_code == 401
    # An admin is an approver too; the last call is the only one that went through.
    async with await running_gateway.client(Role.ADMIN) as admin:
        answer = await admin.post(f"/api/v1/approvals/{approved_once.id}/approve", json={"comment": "second"})
        assert answer.status_code == 202 and answer.json()["approvals_needed"] == 0, answer.text
    sent = await published(running_gateway)
    assert [(r.decision, r.execution_id, r.by) for _, r in sent] == [
        (ApprovalDecision.APPROVE, approved_once.id, "test-admin")
    ]
    assert [e["action"] for e in await audited(running_gateway)] == ["execution.approve"]
