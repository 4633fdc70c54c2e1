"""The gateway server answers its probes, refuses callers without keys, and identifies callers with one."""

from __future__ import annotations

import pytest
from aiops_gateway.auth import Role
from aiops_gateway.testing import RunningGateway

pytestmark = pytest.mark.functional


async def test_probes_and_identity(running_gateway: RunningGateway) -> None:
    async with await running_gateway.client(None) as anonymous:
        assert (await anonymous.get("/health")).json()["status"] == "ok"
        ready = await anonymous.get("/ready")
        assert ready.status_code == 200, ready.text
        refused = await anonymous.get("/api/v1/me")
        assert refused.status_code == 401
        assert refused.json()["error"] and refused.headers["x-request-id"] == refused.json()["request_id"]
        assert refused.headers["x-content-type-options"] == "nosniff"
        bad = await anonymous.get("/api/v1/me", headers={"Authorization": "Bearer aiops_nope_nope"})
        assert bad.status_code == 401
    async with await running_gateway.client(Role.OPERATOR) as operator:
        me = await operator.get("/api/v1/me")
        assert me.status_code == 200
        assert me.json() == {"name": "test-operator", "role": "operator", "via": "key"}
        metrics = await operator.get("/metrics")
        assert 'aiops_gateway_requests_total{method="GET",route="/api/v1/me",status="401"}' in metrics.text
