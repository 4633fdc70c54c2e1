"""The demo's loop end to end on the folder's shared ``aiops demo``: a payment latency fault injected through the
shop's control API -> anomalies -> one incident with payment ranked first -> the scale-out runbook waiting for
approval -> approved through the gateway by an approver (not its requester) -> executed against the shop ->
verified -> the incident mitigated; the Slack-format message and the signed webhook at the demo's receiver.

The first test runs after the audit and authorisation tests (while detection warms up), the second after the
injection corpus, which runs while the approved runbook is verified (conftest's ``ORDER``).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from aiops_common.testing.eventually import scaled

from .conftest import Approved, Platform, control_status, wait

pytestmark = pytest.mark.functional

DONE = {"succeeded", "rolled_back", "rollback_failed", "failed", "rejected", "expired", "interrupted"}


def _get(platform: Platform, path: str) -> Any:
    with platform.client("viewer") as viewer:
        answer = viewer.get(path)
    assert answer.status_code == 200, f"GET {path}: {answer.status_code} {answer.text[:300]}"
    return answer.json()


def test_the_fault_is_ranked_and_its_runbook_approved(approved: Approved) -> None:
    assert approved.fault["service"] == "payment" and approved.fault["kind"] == "latency", approved.fault
    incident = approved.incident["incident"]
    assert "payment" in incident["services"], incident
    # The fault's anomalies made the incident: payment's slowness, seen by it or by the callers it slowed down.
    anomalies = [m for m in incident["members"] if m["kind"] == "anomaly"]
    assert {m["service"] for m in anomalies} & {"payment", "checkout", "frontend"}, incident["members"]
    # The right root cause first, as the runbook was proposed on it.
    assert approved.causes[0]["service"] == "payment", [(c["service"], c["kind"]) for c in approved.causes]
    assert approved.causes[0]["kind"] in {"latency", "saturation", "traffic"}, approved.causes[0]
    assert approved.execution["runbook_id"] == "demo-scale-out-slow", approved.execution
    assert approved.execution["parameters"]["service"] == "payment", approved.execution["parameters"]
    assert approved.execution["status"] == "pending_approval", approved.execution
    # A person approved it, not the one who asked for it (the action service proposed it by its own policy).
    assert approved.execution["requested_by"] != "bad-actors-approver", approved.execution
    assert approved.decision.status_code == 202, approved.decision.text
    assert approved.decision.json()["decision"] == "approve"


def test_the_approved_runbook_fixes_the_shop_and_is_told(platform: Platform, approved: Approved) -> None:
    execution_id = approved.execution["id"]
    incident_id = approved.execution["incident_id"]

    def finished() -> dict[str, Any]:
        record: dict[str, Any] = _get(platform, f"/api/v1/executions/{execution_id}")
        assert record["status"] in DONE, record["status"]
        return record

    record = wait(finished, 240, "the approved execution run and verified")
    assert record["status"] == "succeeded", (record["status"], record.get("verification"), record.get("history"))
    assert record["verification"]["recovered"] is True, record["verification"]
    assert any(a["by"] == "bad-actors-approver" and a["decision"] == "approve" for a in record["approvals"])
    # It acted on the shop: payment runs on more replicas now.
    assert control_status(platform)["services"]["payment"]["replicas"] == 6

    def mitigated() -> dict[str, Any]:
        incident: dict[str, Any] = _get(platform, f"/api/v1/incidents/{incident_id}")["incident"]
        assert incident["status"] == "mitigated", incident["status"]
        return incident

    wait(mitigated, 60, "the incident mitigated")

    # The receiver the demo started got the Slack-format message and the signed webhook of the execution's success
    # for this incident, and printed them.
    def told() -> list[str]:
        lines = platform.printed().splitlines()
        slack = [line for line in lines if line.startswith("[slack]") and "succeeded" in line]
        webhook = [line for line in lines if line.startswith("[webhook] execution") and incident_id in line]
        assert slack, "no Slack message of the execution's success at the receiver"
        assert webhook and all("(signature valid)" in line for line in webhook), webhook
        return webhook

    wait(told, 60, "the notifications at the demo's receiver")
    with httpx.Client(base_url=platform.control_url, timeout=scaled(10.0)) as control:
        assert control.delete(f"/faults/{approved.fault['id']}").status_code == 200
