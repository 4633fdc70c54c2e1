"""The authorisation matrix: every mutating route of the app, called with no credentials and with a key of each role,
refuses the roles below its least role (403; 401 without credentials) and lets the others through; every read under
``/api/v1`` needs a key and takes a viewer's."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from aiops_common.broker.addresses import free_port
from aiops_common.schemas import IncidentMember, IncidentRecord, IncidentSeverity, JoinReason, MemberKind
from aiops_gateway.app import API_PREFIX
from aiops_gateway.auth import Role
from aiops_gateway.routes import ingest
from aiops_gateway.testing import RunningGateway, start_gateway

pytestmark = [pytest.mark.functional, pytest.mark.asyncio(loop_scope="module")]

#: The least role each mutating route takes (method, path template as the app declares it). A route the app
#: has and this table lacks fails the test, and so does an entry the app no longer has.
LEAST_ROLE: dict[tuple[str, str], Role] = {
    ("POST", "/api/v1/incidents/{incident_id}/acknowledge"): Role.OPERATOR,
    ("POST", "/api/v1/incidents/{incident_id}/mitigate"): Role.OPERATOR,
    ("POST", "/api/v1/incidents/{incident_id}/resolve"): Role.OPERATOR,
    ("POST", "/api/v1/incidents/{incident_id}/reopen"): Role.OPERATOR,
    ("POST", "/api/v1/incidents/{incident_id}/split"): Role.OPERATOR,
    ("POST", "/api/v1/incidents/{incident_id}/merge"): Role.OPERATOR,
    ("POST", "/api/v1/feedback"): Role.OPERATOR,
    ("POST", "/api/v1/metrics/write"): Role.OPERATOR,
    ("POST", "/api/v1/logs/write"): Role.OPERATOR,
    ("POST", "/api/v1/alerts/ingest"): Role.OPERATOR,
    ("POST", "/api/v1/write"): Role.OPERATOR,  # Prometheus remote write, forwarded as metrics/write is
    ("POST", "/api/v1/events/deployment"): Role.OPERATOR,
    ("POST", "/api/v1/runbooks/{runbook_id}/execute"): Role.OPERATOR,
    ("POST", "/api/v1/approvals/{execution_id}/approve"): Role.APPROVER,
    ("POST", "/api/v1/approvals/{execution_id}/reject"): Role.APPROVER,
    ("POST", "/api/v1/audit/verify"): Role.ADMIN,
    ("PUT", "/api/v1/config/detection"): Role.ADMIN,
    ("PUT", "/api/v1/config/topology"): Role.ADMIN,
    # No demo is configured here: an admitted caller gets the 404 that says so.
    ("POST", "/api/v1/demo/faults"): Role.OPERATOR,
    ("DELETE", "/api/v1/demo/faults"): Role.OPERATOR,
}

ROLES = (Role.VIEWER, Role.OPERATOR, Role.APPROVER, Role.ADMIN)
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})

#: What a caller the route admits may get back for a minimal body: done, or refused for what the body, the path
#: or the stored state says (never for who the caller is). 503: a forwarding route whose upstream (the ingestion
#: service) this test does not start; the gateway's own stores and broker are up.
ADMITTED = frozenset({400, 404, 409, 413, 415, 422})
UPSTREAM_DOWN = 503


def _incident(n: int, now: datetime) -> IncidentRecord:
    started = now - timedelta(hours=n + 1)
    lead = IncidentMember(
        fingerprint=f"authz-{n}",
        kind=MemberKind.ALERT,
        name="HighLatency",
        service="checkout",
        severity=IncidentSeverity.MAJOR,
        started_at=started,
        lead=True,
        reason=JoinReason(rule="seed"),
        joined_at=started,
    )
    return IncidentRecord(
        id=f"inc-authz-{n}",
        revision=1,
        title=f"checkout latency {n}",
        severity=IncidentSeverity.MAJOR,
        services=["checkout"],
        started_at=started,
        updated_at=started,
        members=[lead],
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gateway_under_test(
    tmp_path_factory: pytest.TempPathFactory, broker_url: str
) -> AsyncIterator[RunningGateway]:
    """One gateway for the module (the matrix is many calls, each cheap); forwarded writes go to a port where
    nothing listens, so they never reach a service outside the test."""
    tmp_path: Path = tmp_path_factory.mktemp("authz")
    prefix = f"t{uuid.uuid4().hex[:10]}."
    servers, running = await start_gateway(
        tmp_path,
        broker_url,
        prefix,
        gateway_ingest_url=f"http://127.0.0.1:{free_port()}",
        gateway_rate_limit="100000/minute",
        gateway_anonymous_rate_limit="100000/minute",
    )
    try:
        now = datetime.now(UTC)
        for n in range(2):
            incident = _incident(n, now)
            await running.gateway.documents.upsert("incidents", incident.id, incident.document())
        await running.gateway.documents.refresh("incidents")
        yield running
    finally:
        await servers.stop()


async def _operations(running: RunningGateway, methods: frozenset[str]) -> list[tuple[str, str]]:
    """(method, path template) of the running app's routes under ``/api/v1``, from its OpenAPI document (every
    route declares itself there, so a route added later is found without changing this test)."""
    async with httpx.AsyncClient(base_url=running.url, timeout=30.0) as client:
        response = await client.get(f"{API_PREFIX}/openapi.json")
    response.raise_for_status()
    paths: dict[str, dict[str, Any]] = response.json()["paths"]
    return sorted(
        (method.upper(), path)
        for path, operations in paths.items()
        if path.startswith(API_PREFIX + "/")
        for method in operations
        if method.upper() in methods
    )


def _url(template: str) -> str:
    """A concrete path: every path parameter is a stored incident's id (a 404 elsewhere still proves the caller
    was let in)."""
    return re.sub(r"\{[^}/]+\}", "inc-authz-0", template)


async def _call(client: httpx.AsyncClient, method: str, template: str) -> tuple[int, str]:
    """Status and (for refusals) the body; a streamed answer (the live feed) is not read."""
    kwargs: dict[str, Any] = {"json": {}} if method in MUTATING else {}
    async with client.stream(method, _url(template), **kwargs) as response:
        body = ""
        if response.status_code >= 400:
            body = (await response.aread()).decode(errors="replace")[:200]
        return response.status_code, body


async def test_the_table_names_every_mutating_route(gateway_under_test: RunningGateway) -> None:
    routes = set(await _operations(gateway_under_test, MUTATING))
    missing = sorted(routes - LEAST_ROLE.keys())
    stale = sorted(LEAST_ROLE.keys() - routes)
    assert not missing, f"mutating routes without a least role in LEAST_ROLE: {missing}"
    # A planned route that has not landed yet is not an error of the app, but the entry must match a route once
    # one with that method and first segments exists (a renamed path parameter shows up here).
    renamed = [(m, p) for m, p in stale if any(m == rm and _shape(p) == _shape(rp) for rm, rp in routes)]
    assert not renamed, f"LEAST_ROLE entries whose route is spelled differently by the app: {renamed}"


def _shape(template: str) -> str:
    return re.sub(r"\{[^}/]+\}", "{}", template)


async def test_mutating_routes_refuse_the_roles_below_theirs_and_admit_the_others(
    gateway_under_test: RunningGateway,
) -> None:
    running = gateway_under_test
    operations = [op for op in await _operations(running, MUTATING) if op in LEAST_ROLE]
    wrong: list[str] = []
    async with await running.client(None) as anonymous:
        for method, template in operations:
            status, body = await _call(anonymous, method, template)
            if status != 401:
                wrong.append(f"{method} {template} without credentials: {status} (want 401) {body}")
    for role in ROLES:
        async with await running.client(role) as client:
            for method, template in operations:
                least = LEAST_ROLE[(method, template)]
                status, body = await _call(client, method, template)
                if not role.allows(least):
                    if status != 403:
                        wrong.append(f"{method} {template} as {role}: {status} (want 403, needs {least}) {body}")
                elif not (200 <= status < 300 or status in ADMITTED or _upstream_down(template, status)):
                    wrong.append(f"{method} {template} as {role}: {status} (want it admitted) {body}")
    assert operations, "the app has no mutating route under /api/v1"
    assert not wrong, "\n".join(wrong)


def _upstream_down(template: str, status: int) -> bool:
    return status == UPSTREAM_DOWN and template.removeprefix(API_PREFIX) in ingest.FORWARDED


async def test_reads_need_credentials_and_take_a_viewer(gateway_under_test: RunningGateway) -> None:
    running = gateway_under_test
    reads = await _operations(running, frozenset({"GET"}))
    assert ("GET", "/api/v1/me") in reads
    wrong: list[str] = []
    async with await running.client(None) as anonymous, await running.client(Role.VIEWER) as viewer:
        for _, template in reads:
            status, body = await _call(anonymous, "GET", template)
            if status != 401:
                wrong.append(f"GET {template} without credentials: {status} (want 401) {body}")
            status, body = await _call(viewer, "GET", template)
            if not (200 <= status < 300 or status in ADMITTED):
                wrong.append(f"GET {template} as viewer: {status} (want it admitted) {body}")
    assert not wrong, "\n".join(wrong)


async def test_a_revoked_or_made_up_key_is_refused_everywhere(gateway_under_test: RunningGateway) -> None:
    running = gateway_under_test
    key, text = await running.gateway.auth.keys.create("authz-revoked", Role.ADMIN, "tests")
    await running.gateway.auth.keys.revoke(key.id)
    made_up = f"aiops_{key.id}_not-the-secret"
    wrong: list[str] = []
    operations = [*(await _operations(running, MUTATING)), ("GET", "/api/v1/me")]
    async with httpx.AsyncClient(base_url=running.url, timeout=30.0) as client:
        for token in (text, made_up, "not-a-key"):
            client.headers["Authorization"] = f"Bearer {token}"
            for method, template in operations:
                status, body = await _call(client, method, template)
                if status != 401:
                    wrong.append(f"{method} {template} with {token[:12]}…: {status} (want 401) {body}")
    assert not wrong, "\n".join(wrong)
