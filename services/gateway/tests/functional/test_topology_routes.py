"""The topology through the API: every service and edge, and one service with its neighbours and changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from aiops_common.topology import Change, Dependency, load_topology
from aiops_gateway.auth import Role
from aiops_gateway.testing import RunningGateway

pytestmark = pytest.mark.functional


async def test_topology_and_one_service(running_gateway: RunningGateway) -> None:
    store = running_gateway.gateway.topology
    now = datetime.now(UTC).replace(microsecond=0)
    await load_topology(
        store,
        {
            "services": [
                {"name": "web", "tier": "edge"},
                {"name": "api", "tier": "app", "zone": "eu-1", "team": "core", "replicas": 3},
                {"name": "db", "tier": "data"},
            ],
            "dependencies": [{"from": "web", "to": "api"}, {"from": "api", "to": "db"}],
        },
        now - timedelta(hours=1),
    )
    await store.upsert_dependencies([Dependency("api", "db", frozenset({"traces"}), now, now)])
    await store.add_changes(
        [
            Change("ch-old", "api", now - timedelta(days=30), description="long ago"),
            Change("ch-1", "api", now - timedelta(hours=2), description="v1.2"),
            Change("ch-2", "api", now - timedelta(minutes=5), kind="config", description="pool size"),
            Change("ch-db", "db", now - timedelta(minutes=5)),
        ]
    )
    async with await running_gateway.client(Role.VIEWER) as viewer:
        whole = await viewer.get("/api/v1/topology")
        assert whole.status_code == 200, whole.text
        services = {s["name"]: s for s in whole.json()["services"]}
        assert list(services) == ["api", "db", "web"]
        assert services["api"]["tier"] == "app" and services["api"]["zone"] == "eu-1"
        assert services["api"]["team"] == "core" and services["api"]["attributes"]["replicas"] == 3
        assert services["web"]["zone"] is None
        deps = {(d["caller"], d["callee"]): d for d in whole.json()["dependencies"]}
        assert set(deps) == {("web", "api"), ("api", "db")}
        assert deps["api", "db"]["sources"] == ["file", "traces"]
        assert datetime.fromisoformat(deps["api", "db"]["last_seen"]) == now
        assert datetime.fromisoformat(deps["web", "api"]["last_seen"]) == now - timedelta(hours=1)

        one = await viewer.get("/api/v1/topology/services/api")
        assert one.status_code == 200, one.text
        detail = one.json()
        assert detail["service"]["name"] == "api"
        assert [(d["caller"], d["callee"]) for d in detail["upstream"]] == [("web", "api")]
        assert [(d["caller"], d["callee"]) for d in detail["downstream"]] == [("api", "db")]
        assert [c["id"] for c in detail["changes"]] == ["ch-2", "ch-1"]
        assert detail["changes"][0]["kind"] == "config" and detail["changes"][0]["description"] == "pool size"
        longer = await viewer.get("/api/v1/topology/services/api", params={"changes_days": 60})
        assert [c["id"] for c in longer.json()["changes"]] == ["ch-2", "ch-1", "ch-old"]

        edge = (await viewer.get("/api/v1/topology/services/web")).json()
        assert edge["upstream"] == [] and [d["callee"] for d in edge["downstream"]] == ["api"]

        missing = await viewer.get("/api/v1/topology/services/nope")
        assert missing.status_code == 404 and "nope" in missing.json()["error"]
        assert (await viewer.get("/api/v1/topology/services/api", params={"changes_days": 0})).status_code == 422
    async with await running_gateway.client(None) as anonymous:
        assert (await anonymous.get("/api/v1/topology")).status_code == 401


async def test_empty_topology(running_gateway: RunningGateway) -> None:
    async with await running_gateway.client(Role.VIEWER) as viewer:
        assert (await viewer.get("/api/v1/topology")).json() == {"services": [], "dependencies": []}
