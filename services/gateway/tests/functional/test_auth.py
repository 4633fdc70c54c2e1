"""Authentication at the front door: open reads let anonymous callers read as viewers but never change anything;
missing, malformed or garbage credentials are a 401 with the JSON body, never a 500."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiops_gateway.auth import Role
from aiops_gateway.testing import RunningGateway, start_gateway

pytestmark = pytest.mark.functional

GARBAGE: list[tuple[bytes, bytes]] = [
    (b"Authorization", b"Bearer"),
    (b"Authorization", b"Basic YWRtaW46YWRtaW4="),
    (b"Authorization", ("Token aiops_0123456789ab_" + "s" * 43).encode()),
    (b"Authorization", ("aiops_0123456789ab_" + "s" * 43).encode()),  # a key without its scheme
    (b"Authorization", ("bearer aiops_0123456789ab_" + "s" * 43).encode()),  # any case; an unknown key
    (b"Authorization", b"Bearer aiops_"),
    (b"Authorization", ("Bearer aiops_../../../etc/passwd_" + "s" * 43).encode()),
    (b"Authorization", ("Bearer aiops_0123456789ab_" + "s" * 5000).encode()),
    (b"Authorization", ("Bearer " + "x" * 8000).encode()),
    (b"Authorization", b"Bearer a.b.c"),
    (b"Authorization", b"Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln"),
    (b"Authorization", b"Bearer \xff\xfe\xfd"),
    (b"Authorization", b"Bearer ' OR 1=1 --"),
    (b"X-API-Key", b"aiops_nope_nope"),
    (b"X-API-Key", b"\xc3\xa9\xc3\xa9"),
]


async def assert_refused_without_500(running: RunningGateway, method: str, path: str) -> None:
    async with await running.client(None) as client:
        for header in GARBAGE:
            answer = await client.request(method, path, headers=[header], json={})
            assert answer.status_code == 401, (header, answer.status_code, answer.text)
            body = answer.json()
            assert body["error"] and body["request_id"] == answer.headers["x-request-id"], body
            assert answer.headers["www-authenticate"].startswith("Bearer"), header


async def test_open_reads_let_anonymous_callers_read_but_not_change(
    tmp_path: Path, broker_url: str, topic_prefix: str
) -> None:
    servers, running = await start_gateway(tmp_path, broker_url, topic_prefix, gateway_open_reads=True)
    try:
        async with await running.client(None) as anonymous:
            me = await anonymous.get("/api/v1/me")
            assert me.status_code == 200, me.text
            assert me.json() == {"name": "anonymous", "role": "viewer", "via": "anonymous"}
            assert (await anonymous.get("/api/v1/config/detection")).status_code == 200
            change = await anonymous.put("/api/v1/config/detection", json={})
            assert change.status_code == 401, change.text
            assert "needs an API key" in change.json()["error"]
        async with await running.client(Role.VIEWER) as viewer:
            refused = await viewer.put("/api/v1/config/detection", json={})
            assert refused.status_code == 403, refused.text
            assert "test-viewer is viewer; this needs admin" in refused.json()["error"]
            assert refused.headers["x-ratelimit-limit"] == "1200"  # counted against the key all the same
        # Credentials that do not check out are refused even where anonymous reads are open.
        await assert_refused_without_500(running, "GET", "/api/v1/me")
    finally:
        await servers.stop()


async def test_missing_or_garbage_credentials_are_401_never_500(
    tmp_path: Path, broker_url: str, topic_prefix: str
) -> None:
    servers, running = await start_gateway(
        tmp_path, broker_url, topic_prefix, gateway_anonymous_rate_limit="1000/minute"
    )
    try:
        async with await running.client(None) as anonymous:
            for method, path in [("GET", "/api/v1/me"), ("PUT", "/api/v1/config/detection")]:
                answer = await anonymous.request(method, path, json={})
                assert answer.status_code == 401, answer.text
                assert answer.json()["error"] == "this route needs an API key or a bearer token"
                assert answer.headers["www-authenticate"] == 'Bearer realm="aiops"'
        await assert_refused_without_500(running, "GET", "/api/v1/me")
        await assert_refused_without_500(running, "PUT", "/api/v1/config/detection")
        async with await running.client(Role.ADMIN) as admin:  # and a good key still works afterwards
            assert (await admin.get("/api/v1/me")).json() == {"name": "test-admin", "role": "admin", "via": "key"}
    finally:
        await servers.stop()
