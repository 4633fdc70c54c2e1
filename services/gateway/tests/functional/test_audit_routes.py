"""The audit chain through the API: a lifecycle change's entry read back by its subject, the chain verified, and
an edit made straight in the store named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from aiops_common.audit import AUDIT_COLLECTION
from aiops_common.testing.records import service_anomaly
from aiops_gateway.auth import Role
from aiops_gateway.testing import RunningGateway

pytestmark = pytest.mark.functional


async def test_entries_by_subject_and_the_chain_verified(running_gateway: RunningGateway) -> None:
    gw = running_gateway.gateway
    anomaly = service_anomaly("latency_s", "payment", datetime.now(UTC) - timedelta(minutes=5))
    await gw.feedback.record_anomaly(anomaly)
    async with await running_gateway.client(Role.OPERATOR) as operator:
        for label in ("false_positive", "true_positive"):
            sent = await operator.post(
                "/api/v1/feedback",
                json={"subject_kind": "anomaly", "subject_id": anomaly.id, "label": label, "note": "checked"},
            )
            assert sent.status_code == 202, sent.text
        page = (await operator.get("/api/v1/audit", params={"subject_id": anomaly.id})).json()
        assert [e["seq"] for e in page["entries"]] == [2, 1]  # newest first, one chain
        assert {e["actor"] for e in page["entries"]} == {"test-operator"}
        assert page["entries"][0]["prev_hash"] == page["entries"][1]["hash"]
        assert (await operator.post("/api/v1/audit/verify")).status_code == 403  # an admin's
        assert (await operator.get("/api/v1/audit", params={"cursor": "nope"})).status_code == 400
    async with await running_gateway.client(Role.ADMIN) as admin:
        report = (await admin.post("/api/v1/audit/verify")).json()
        assert report["intact"] is True and report["entries"] == 2 and report["head"]["seq"] == 2
        head = f"{report['head']['seq']}:{report['head']['hash']}"
        stored = await gw.documents.get(AUDIT_COLLECTION, "audit-000000000001")
        assert stored is not None
        await gw.documents.upsert(AUDIT_COLLECTION, stored.id, {**stored.body, "actor": "someone-else"})
        tampered = (await admin.post("/api/v1/audit/verify", params={"head": head})).json()
        assert tampered["intact"] is False
        assert [(p["kind"], p["seq"]) for p in tampered["problems"]] == [("edited", 1)]
        assert (await admin.post("/api/v1/audit/verify", params={"head": "x"})).status_code == 400
