"""The demo's loop end to end on the folder's shared ``aiops demo``: a payment latency fault injected through the
shop's control API -> anomalies -> one incident with payment ranked first -> the scale-out runbook waiting for
approval -> approved through the gateway by an approver (not its requester) -> executed against the shop ->
verified -> the incident mitigated; the Slack-format message and the signed webhook at the demo's receiver.

It runs after the audit and authorisation tests (while detection warms up) and before the injection corpus
(conftest's ``MODULE_ORDER``).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from aiops_common.testing.eventually import eventually, scaled

from .conftest import Platform

pytestmark = pytest.mark.functional

WINDOW_S = 10


def _get(platform: Platform, path: str, **params: Any) -> Any:
    with platform.client("viewer") as viewer:
        answer = viewer.get(path, params=params)
    assert answer.status_code == 200, f"GET {path}: {answer.status_code} {answer.text[:300]}"
    return answer.json()


def _control(platform: Platform) -> dict[str, Any]:
    with httpx.Client(base_url=platform.control_url, timeout=scaled(10.0)) as control:
        status: dict[str, Any] = control.get("/status").json()
    return status


def _wait(check: Any, timeout_s: float, what: str, interval: float = 1.0) -> Any:
    return asyncio.run(eventually(check, timeout=scaled(timeout_s), what=what, interval=interval))


def test_a_payment_latency_fault_is_found_fixed_and_told(platform: Platform) -> None:
    def warm() -> bool:
        assert _control(platform)["warm"], "the shop's series are not warm yet"
        return True

    _wait(warm, 240, "detection warm on the shop's series (the control API's status)", interval=2.0)

    # Onset just after a 10 s window starts, as the scripted `aiops demo run` does: a fault late in a window gives
    # its first window a second or two of it, and the RCA's first ranking (the one the runbook is proposed on) less
    # to go by.
    def early_in_a_window() -> bool:
        assert 0.3 <= time.time() % WINDOW_S <= 1.5, "not at the start of a window"
        return True

    _wait(early_in_a_window, 30, "the start of a 10 s window", interval=0.1)
    with httpx.Client(base_url=platform.control_url, timeout=scaled(10.0)) as control:
        made = control.post("/faults", json={"service": "payment", "kind": "latency", "for_s": 300})
    assert made.status_code == 201, made.text
    fault = made.json()
    assert fault["service"] == "payment" and fault["kind"] == "latency"

    def pending() -> dict[str, Any]:
        waiting = _get(platform, "/api/v1/approvals", limit=200)["executions"]
        ours = [e for e in waiting if e.get("cause_service") == "payment"]
        assert ours, f"no execution for payment waits for approval: {[e.get('cause_service') for e in waiting]}"
        return dict(ours[0])

    execution = _wait(pending, 180, "a runbook for payment waiting for approval")
    assert execution["runbook_id"] == "demo-scale-out-slow", execution
    incident_id = execution["incident_id"]
    detail = _get(platform, f"/api/v1/incidents/{incident_id}")
    assert "payment" in detail["incident"]["services"], detail["incident"]
    causes = _get(platform, f"/api/v1/incidents/{incident_id}/rca")["causes"]
    assert causes[0]["service"] == "payment", [(c["service"], c["kind"]) for c in causes]
    assert causes[0]["kind"] in {"latency", "saturation", "traffic"}, causes[0]
    # The fault's anomalies are in the incident, each a shop series that departed after onset.
    kinds = {m["kind"] for m in detail["incident"]["members"]}
    assert "anomaly" in kinds, detail["incident"]["members"]

    # A person approves, through the gateway, with a key of the approver role: not the requester (the action
    # service proposed it), and the one approval the policy asks for.
    assert execution["requested_by"] != "bad-actors-approver", execution
    with platform.client("approver") as approver:
        decided = approver.post(
            f"/api/v1/approvals/{execution['id']}/approve", json={"comment": "scale payment out (bad-actors loop)"}
        )
    assert decided.status_code == 202, decided.text
    assert decided.json()["decision"] == "approve"

    def finished() -> dict[str, Any]:
        record: dict[str, Any] = _get(platform, f"/api/v1/executions/{execution['id']}")
        assert record["status"] in {"succeeded", "rolled_back", "rollback_failed", "failed"}, record["status"]
        return record

    record = _wait(finished, 240, "the execution run and verified")
    assert record["status"] == "succeeded", (record["status"], record.get("verification"), record.get("history"))
    assert record["verification"]["recovered"] is True, record["verification"]
    assert any(a["by"] == "bad-actors-approver" and a["decision"] == "approve" for a in record["approvals"])
    # It acted on the shop: payment runs on more replicas now.
    assert _control(platform)["services"]["payment"]["replicas"] == 6

    def mitigated() -> dict[str, Any]:
        incident: dict[str, Any] = _get(platform, f"/api/v1/incidents/{incident_id}")["incident"]
        assert incident["status"] == "mitigated", incident["status"]
        return incident

    _wait(mitigated, 60, "the incident mitigated")

    # The receiver the demo started got the Slack-format message and the signed webhook of the execution's
    # outcome for this incident, and printed them.
    def told() -> list[str]:
        lines = platform.printed().splitlines()
        slack = [line for line in lines if line.startswith("[slack]") and "succeeded" in line]
        webhook = [line for line in lines if line.startswith("[webhook]") and incident_id in line]
        assert slack, "no Slack message of the execution's success at the receiver"
        assert webhook and all("(signature valid)" in line for line in webhook), webhook
        return webhook

    told_lines = _wait(told, 60, "the notifications at the demo's receiver")
    assert any(line.startswith("[webhook] execution") for line in told_lines), told_lines
    with httpx.Client(base_url=platform.control_url, timeout=scaled(10.0)) as control:
        assert control.delete(f"/faults/{fault['id']}").status_code == 200
