"""The detection configuration through the API: versioned, validated, refused on conflicts and to other roles,
audited; and a topology file loaded by an admin."""

from __future__ import annotations

import asyncio

import pytest
from aiops_common.documents import DocumentFilter
from aiops_common.schemas.config import config_doc_id
from aiops_gateway.auth import Role
from aiops_gateway.testing import RunningGateway

pytestmark = pytest.mark.functional

RULE = {"metric": "disk_used_percent", "upper": 95.0}


async def test_detection_config_versions(running_gateway: RunningGateway) -> None:
    async with await running_gateway.client(Role.ADMIN) as admin:
        empty = await admin.get("/api/v1/config/detection")
        assert empty.status_code == 200, empty.text
        assert empty.json()["version"] == 0 and empty.json()["config"]["static_rules"] == []
        assert (await admin.get("/api/v1/config/detection/versions")).json() == {"versions": []}

        first = await admin.put(
            "/api/v1/config/detection",
            json={"config": {"flag_score": 0.3, "static_rules": [RULE]}, "note": "disk limit", "expected_version": 0},
        )
        assert first.status_code == 200, first.text
        body = first.json()
        assert (body["version"], body["by"], body["note"]) == (1, "test-admin", "disk limit")
        assert body["config"]["static_rules"][0]["upper"] == 95.0

        second = await admin.put(
            "/api/v1/config/detection", json={"config": {"flag_score": 0.4}, "note": "", "expected_version": 1}
        )
        assert second.status_code == 200 and second.json()["version"] == 2

        # Based on version 1, which is no longer current: refused, nothing written.
        stale = await admin.put("/api/v1/config/detection", json={"config": {}, "expected_version": 1})
        assert stale.status_code == 409
        assert "version 2 is current" in stale.json()["error"] and stale.json()["request_id"]

        current = (await admin.get("/api/v1/config/detection")).json()
        assert current["version"] == 2 and current["config"]["flag_score"] == 0.4
        versions = (await admin.get("/api/v1/config/detection/versions")).json()["versions"]
        assert [v["version"] for v in versions] == [2, 1]
        assert [
            v["version"] for v in (await admin.get("/api/v1/config/detection/versions?limit=1")).json()["versions"]
        ] == [2]
        old = await admin.get("/api/v1/config/detection/versions/1")
        assert old.status_code == 200 and old.json()["config"]["flag_score"] == 0.3
        assert (await admin.get("/api/v1/config/detection/versions/3")).status_code == 404

        # Stored as the schema says: one document per version in the config collection.
        stored = await running_gateway.gateway.documents.get("config", config_doc_id("detection", 2))
        assert stored is not None and stored.body["kind"] == "detection" and stored.body["version"] == 2

    audit = await running_gateway.gateway.documents.query(
        "audit", DocumentFilter(terms=(("action", "config.detection.update"),)), oldest_first=True
    )
    entries = [d.body for d in audit.documents]
    assert [e["details"]["version"] for e in entries] == [1, 2]
    assert entries[0]["details"]["diff"] == "flag_score unset -> 0.3; static_rules +1 -0"
    assert entries[1]["details"]["diff"] == "flag_score 0.3 -> 0.4; static_rules +0 -1"
    assert entries[1]["actor"] == "test-admin"


async def test_concurrent_writes_make_one_version_each(running_gateway: RunningGateway) -> None:
    async with await running_gateway.client(Role.ADMIN) as admin:
        answers = await asyncio.gather(
            *(
                admin.put("/api/v1/config/detection", json={"config": {"flag_score": f / 10}, "expected_version": 0})
                for f in range(1, 5)
            )
        )
        statuses = sorted(a.status_code for a in answers)
        # Every writer based its change on version 0: exactly one may make version 1.
        assert statuses == [200, 409, 409, 409], [a.text for a in answers]
        versions = (await admin.get("/api/v1/config/detection/versions")).json()["versions"]
        assert [v["version"] for v in versions] == [1]

        # Without expected_version, racing writers each get a version of their own or a 409, never the same one.
        racing = await asyncio.gather(
            *(admin.put("/api/v1/config/detection", json={"config": {"confirm_score": 0.5}}) for _ in range(4))
        )
        made = [a.json()["version"] for a in racing if a.status_code == 200]
        assert all(a.status_code in (200, 409) for a in racing)
        assert made and len(made) == len(set(made))
        for refused in (a for a in racing if a.status_code == 409):
            assert "at the same time" in refused.json()["error"]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"static_rules": [{"metric": "disk"}]}, "needs a lower limit, an upper limit or both"),
        ({"flag_score": 0.5, "confirm_score": 0.2}, "confirm_score must not be below flag_score"),
        ({"severities": [0.9, 0.5, 0.7]}, "severities must increase"),
        ({"sensitivity": [{"slack": 1.0}]}, "exactly one of series_key and service"),
        ({"flag_score": 2}, "less than or equal to 1"),
        ({"thresholds": 1}, "Extra inputs are not permitted"),
    ],
)
async def test_invalid_config_is_refused(
    running_gateway: RunningGateway, config: dict[str, object], message: str
) -> None:
    async with await running_gateway.client(Role.ADMIN) as admin:
        refused = await admin.put("/api/v1/config/detection", json={"config": config})
        assert refused.status_code == 422, refused.text
        assert message in refused.json()["error"]
        assert (await admin.get("/api/v1/config/detection")).json()["version"] == 0


async def test_only_admins_change_configuration(running_gateway: RunningGateway) -> None:
    for role in (Role.VIEWER, Role.OPERATOR, Role.APPROVER):
        async with await running_gateway.client(role) as client:
            assert (await client.get("/api/v1/config/detection")).status_code == 200
            detection = await client.put("/api/v1/config/detection", json={"config": {"flag_score": 0.2}})
            assert detection.status_code == 403, detection.text
            topology = await client.put("/api/v1/config/topology", json={"services": [{"name": "api"}]})
            assert topology.status_code == 403
    async with await running_gateway.client(None) as anonymous:
        assert (await anonymous.put("/api/v1/config/detection", json={"config": {}})).status_code == 401
        assert (await anonymous.get("/api/v1/config/detection")).status_code == 401
    async with await running_gateway.client(Role.ADMIN) as admin:
        assert (await admin.get("/api/v1/config/detection")).json()["version"] == 0
    assert await running_gateway.gateway.topology.services() == []


async def test_topology_file_is_loaded_or_refused_with_every_problem(running_gateway: RunningGateway) -> None:
    payload = {
        "services": [{"name": "api", "tier": "edge", "team": "web"}, {"name": "db", "tier": "data", "zone": "eu-1"}],
        "dependencies": [{"from": "api", "to": "db"}],
    }
    async with await running_gateway.client(Role.ADMIN) as admin:
        loaded = await admin.put("/api/v1/config/topology", json=payload)
        assert loaded.status_code == 200, loaded.text
        assert loaded.json() == {"services": 2, "dependencies": 1}
        bad = await admin.put(
            "/api/v1/config/topology",
            json={"services": [{"name": "api"}, {"tier": "x"}], "dependencies": [{"from": "api", "to": "cache"}]},
        )
        assert bad.status_code == 400
        error = bad.json()["error"]
        assert "services[1].name" in error and "dependencies[0].to: 'cache' is not a service" in error
        assert (await admin.put("/api/v1/config/topology", json=[1, 2])).status_code == 422
    store = running_gateway.gateway.topology
    assert [s.name for s in await store.services()] == ["api", "db"]
    assert [(d.caller, d.callee) for d in await store.dependencies()] == [("api", "db")]
    audit = await running_gateway.gateway.documents.query(
        "audit", DocumentFilter(terms=(("action", "config.topology.load"),))
    )
    assert [d.body["details"] for d in audit.documents] == [{"services": 2, "dependencies": 1}]
