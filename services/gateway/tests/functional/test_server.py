"""The gateway server answers its probes, refuses callers without keys, and identifies callers with one."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiops_common.broker.addresses import free_port
from aiops_gateway.auth import Role
from aiops_gateway.testing import RunningGateway, start_gateway

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


async def test_cors_security_headers_and_request_ids(tmp_path: Path, broker_url: str, topic_prefix: str) -> None:
    servers, running = await start_gateway(
        tmp_path, broker_url, topic_prefix, gateway_cors_origins=["https://ops.example.com"]
    )
    try:
        async with await running.client(Role.VIEWER) as viewer:
            preflight = {"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"}
            allowed = await viewer.options(
                "/api/v1/incidents", headers={"Origin": "https://ops.example.com", **preflight}
            )
            assert allowed.status_code == 200
            assert allowed.headers["access-control-allow-origin"] == "https://ops.example.com"
            other = await viewer.options("/api/v1/incidents", headers={"Origin": "https://evil.example", **preflight})
            assert "access-control-allow-origin" not in other.headers
            answer = await viewer.get(
                "/api/v1/incidents", headers={"Origin": "https://ops.example.com", "X-Request-ID": "trace-42"}
            )
            assert answer.status_code == 200
            assert answer.headers["x-request-id"] == "trace-42"  # the caller's id, kept for its logs
            assert "X-Request-ID" in answer.headers["access-control-expose-headers"]
            assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
            assert answer.headers["x-frame-options"] == "DENY"
            assert answer.headers["referrer-policy"] == "no-referrer"
            fresh = await viewer.get("/api/v1/incidents", headers={"X-Request-ID": "x" * 500})
            assert len(fresh.headers["x-request-id"]) == 32  # an unusable id is replaced, not echoed
    finally:
        await servers.stop()


async def test_stores_that_cannot_be_reached_are_a_503_with_retry_after(
    tmp_path: Path, broker_url: str, topic_prefix: str
) -> None:
    # Nothing listens on these ports: the Elasticsearch document store, the Bolt topology store and the
    # Prometheus-API time-series store are down.
    servers, running = await start_gateway(
        tmp_path,
        broker_url,
        topic_prefix,
        documents_url=f"elasticsearch://127.0.0.1:{free_port()}",
        topology_url=f"bolt://127.0.0.1:{free_port()}",
        tsdb_url=f"prometheus://127.0.0.1:{free_port()}",
        gateway_request_timeout_s=5.0,
        gateway_open_reads=True,
    )
    try:
        # The key check needs the document store too: open reads let the routes themselves meet the outage.
        async with await running.client(None) as anonymous:
            for path in ("/api/v1/incidents", "/api/v1/topology", "/api/v1/metrics/query?name=up"):
                answer = await anonymous.get(path, headers={"X-Request-ID": f"down-{path[8:]}"})
                assert answer.status_code == 503, (path, answer.text)
                assert answer.headers["retry-after"] == "5"
                assert answer.headers["x-request-id"] == f"down-{path[8:]}" == answer.json()["request_id"]
                assert "unavailable" in answer.json()["error"]
            assert (await anonymous.get("/ready")).status_code == 503
    finally:
        await servers.stop()
