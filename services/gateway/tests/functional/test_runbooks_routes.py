"""Runbooks through the API against a real gateway: the runbooks the action service loaded, a request to run one for
an incident (checked against the stores, published to ``approvals`` keyed by the incident, audited), a runbook's
executions, and outcome labels refused from people."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiops_common.schemas import (
    ApprovalDecision,
    ExecutionStatus,
    IncidentMember,
    IncidentRecord,
    IncidentSeverity,
    IncidentStatus,
    JoinReason,
    MemberKind,
)
from aiops_gateway.auth import Role
from aiops_gateway.testing import RunningGateway

from .test_approvals import audited, execution, published, store

pytestmark = pytest.mark.functional

NOW = datetime.now(UTC).replace(microsecond=0)


def runbook(runbook_id: str, title: str, risk: str, parameters: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A runbook document as the action worker writes it at start."""
    step = {"name": "restart", "kind": "kubernetes", "action": "rollout_restart"}
    return {
        "id": runbook_id,
        "version": 2,
        "title": title,
        "description": f"{title}, then watch latency",
        "risk": risk,
        "match": "latency on any service, severity >= major",
        "parameters": parameters,
        "steps": [step],
        "rollback": [{**step, "name": "undo", "action": "rollback"}],
        "verify": {
            "series": "http_p95_latency_s",
            "match": {"service": {"param": "deployment"}},
            "lower": None,
            "upper": 0.5,
            "within_s": 300,
            "for_s": 60,
        },
        "loaded_at": NOW.isoformat(),
    }


def incident(incident_id: str, status: IncidentStatus = IncidentStatus.OPEN, merged_into: str | None = None) -> Any:
    started = NOW - timedelta(minutes=20)
    return IncidentRecord(
        id=incident_id,
        revision=1,
        title="payment latency",
        severity=IncidentSeverity.MAJOR,
        status=status,
        services=["payment", "checkout"],
        started_at=started,
        updated_at=started,
        resolved_at=started if status is IncidentStatus.RESOLVED else None,
        members=[
            IncidentMember(
                fingerprint=f"fp-{incident_id}",
                kind=MemberKind.ALERT,
                name="HighLatency",
                service="payment",
                started_at=started,
                lead=True,
                reason=JoinReason(rule="seed"),
                joined_at=started,
            )
        ],
        merged_into=merged_into,
    )


async def seed(running: RunningGateway) -> None:
    gw = running.gateway
    restart_params = {
        "deployment": {"type": "string", "source": "cause.service", "default": None, "description": "what"},
        "namespace": {"type": "string", "source": None, "default": "shop", "description": ""},
    }
    await gw.documents.upsert_many(
        "runbooks",
        [
            ("restart-service", runbook("restart-service", "Restart a service", "medium", restart_params)),
            (
                "scale-service",
                runbook("scale-service", "Scale a saturated service", "low", {"replicas": {"type": "integer"}}),
            ),
        ],
    )
    incidents = [
        incident("inc-open"),
        incident("inc-done", IncidentStatus.RESOLVED),
        incident("inc-gone", merged_into="inc-open"),
        incident("inc-busy"),
    ]
    await gw.documents.upsert_many("incidents", [(i.id, i.document()) for i in incidents])
    for name in ("runbooks", "incidents"):
        await gw.documents.refresh(name)


async def test_the_loaded_runbooks_are_listed_and_read(running_gateway: RunningGateway) -> None:
    await seed(running_gateway)
    async with await running_gateway.client(Role.VIEWER) as viewer:
        listed = await viewer.get("/api/v1/runbooks")
        assert listed.status_code == 200, listed.text
        runbooks = listed.json()["runbooks"]
        assert [r["id"] for r in runbooks] == ["restart-service", "scale-service"]
        assert runbooks[0]["parameters"]["namespace"]["default"] == "shop"
        assert runbooks[0]["rollback"][0]["action"] == "rollback"
        low = (await viewer.get("/api/v1/runbooks", params={"risk": "low"})).json()["runbooks"]
        assert [r["id"] for r in low] == ["scale-service"]
        one = await viewer.get("/api/v1/runbooks/restart-service")
        assert one.status_code == 200, one.text
        assert (one.json()["version"], one.json()["verify"]["upper"], one.json()["match"]) == (
            2,
            0.5,
            "latency on any service, severity >= major",
        )
        missing = await viewer.get("/api/v1/runbooks/clear-disk")
        assert missing.status_code == 404 and "no runbook 'clear-disk'" in missing.json()["error"]
        assert (await viewer.get("/api/v1/runbooks/bad id!")).status_code == 422
    async with await running_gateway.client(None) as anonymous:
        assert (await anonymous.get("/api/v1/runbooks")).status_code == 401


async def test_a_runbook_request_is_checked_published_keyed_by_incident_and_audited(
    running_gateway: RunningGateway,
) -> None:
    await seed(running_gateway)
    busy = execution("inc-busy", "restart-service", status=ExecutionStatus.RUNNING)
    finished = execution("inc-open", "restart-service", status=ExecutionStatus.ROLLED_BACK, expires_in=None)
    await store(running_gateway, busy, finished)
    refused = [
        ("clear-disk", {"incident_id": "inc-open"}, 404, "no runbook"),
        ("restart-service", {"incident_id": "inc-nope"}, 404, "no incident"),
        ("restart-service", {"incident_id": "inc-done"}, 409, "is resolved"),
        ("restart-service", {"incident_id": "inc-gone"}, 409, "merged into inc-open"),
        ("restart-service", {"incident_id": "inc-open", "parameters": {"replicas": 3}}, 400, "no parameter replicas"),
        ("scale-service", {"incident_id": "inc-open", "parameters": {"replicas": "many"}}, 400, "not an integer"),
        ("scale-service", {"incident_id": "inc-open", "parameters": {"replicas": True}}, 400, "not an integer"),
        ("restart-service", {"incident_id": "inc-open", "parameters": {"namespace": 3}}, 400, "not a string"),
        ("restart-service", {"incident_id": "inc-busy"}, 409, "still running"),
        ("restart-service", {"incident_id": "inc-open", "dry_run": True}, 422, "dry_run"),
        ("restart-service", {"incident_id": "inc-open", "parameters": {"namespace": ["a"]}}, 422, "parameters"),
        ("restart-service", {}, 422, "incident_id"),
    ]
    async with await running_gateway.client(Role.OPERATOR) as operator:
        for runbook_id, body, status, needle in refused:
            answer = await operator.post(f"/api/v1/runbooks/{runbook_id}/execute", json=body)
            assert answer.status_code == status and needle in answer.json()["error"], (runbook_id, body, answer.text)
        accepted = await operator.post(
            "/api/v1/runbooks/restart-service/execute",
            json={"incident_id": "inc-open", "parameters": {"namespace": "payments"}, "note": "latency since deploy"},
        )
        assert accepted.status_code == 202, accepted.text
        request_id = accepted.headers["x-request-id"]
        assert accepted.json() == {
            "status": "requested",
            "incident_id": "inc-open",
            "runbook_id": "restart-service",
            "request_id": request_id,
        }
    async with await running_gateway.client(Role.VIEWER) as viewer:
        answer = await viewer.post("/api/v1/runbooks/restart-service/execute", json={"incident_id": "inc-open"})
        assert answer.status_code == 403

    sent = await published(running_gateway)
    assert len(sent) == 1
    key, record = sent[0]
    assert key == b"inc-open"
    assert (record.decision, record.incident_id, record.runbook_id, record.parameters, record.comment) == (
        ApprovalDecision.REQUEST,
        "inc-open",
        "restart-service",
        {"namespace": "payments"},
        "latency since deploy",
    )
    assert (record.by, record.role, record.via, record.request_id, record.execution_id) == (
        "test-operator",
        "operator",
        "api",
        request_id,
        "",
    )
    entries = await audited(running_gateway)
    assert [(e["action"], e["subject_id"], e["message"]) for e in entries] == [
        ("runbook.request", "inc-open", "latency since deploy")
    ]
    assert entries[0]["details"]["runbook_id"] == "restart-service"
    assert entries[0]["services"] == ["payment", "checkout"]


async def test_a_runbooks_executions_are_its_status(running_gateway: RunningGateway) -> None:
    await seed(running_gateway)
    older = execution(
        "inc-open", "restart-service", status=ExecutionStatus.ROLLED_BACK, requested_ago=timedelta(hours=1)
    )
    newer = execution("inc-open", "restart-service", attempt=2, requested_ago=timedelta(minutes=1))
    other = execution("inc-busy", "scale-service")
    await store(running_gateway, older, newer, other)
    async with await running_gateway.client(Role.VIEWER) as viewer:
        answer = await viewer.get("/api/v1/runbooks/restart-service/status")
        assert answer.status_code == 200, answer.text
        assert [(e["id"], e["attempt"], e["status"]) for e in answer.json()["executions"]] == [
            (newer.id, 2, "pending_approval"),
            (older.id, 1, "rolled_back"),
        ]
        first = (await viewer.get("/api/v1/runbooks/restart-service/status", params={"limit": 1})).json()
        assert [e["id"] for e in first["executions"]] == [newer.id] and first["next_cursor"]
        unknown = await viewer.get("/api/v1/runbooks/clear-disk/status")
        assert unknown.status_code == 404


async def test_outcome_labels_are_the_action_services_to_give(running_gateway: RunningGateway) -> None:
    await seed(running_gateway)
    async with await running_gateway.client(Role.ADMIN) as admin:
        for label in ("remediated", "not_remediated"):
            body = {"subject_kind": "incident", "subject_id": "inc-open", "label": label, "related_id": "", "note": ""}
            answer = await admin.post("/api/v1/feedback", json=body)
            assert answer.status_code == 400, answer.text
            assert "execution outcomes are recorded by the action service" in answer.json()["error"]
    assert await audited(running_gateway) == []
