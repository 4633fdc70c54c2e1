"""Rate limits on a real gateway: a key over its limit gets 429 with Retry-After and the JSON body while another key
goes on; callers without credentials and refused credentials are limited per client address."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from aiops_gateway.auth import Role
from aiops_gateway.testing import start_gateway

pytestmark = pytest.mark.functional


def limited_count(metrics: str, via: str) -> float:
    found = re.search(rf'^aiops_gateway_rate_limited_total\{{via="{via}"\}} (\S+)$', metrics, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def assert_rate_limited(answer: httpx.Response, limit: int) -> None:
    assert answer.status_code == 429, answer.text
    retry_after = answer.headers["retry-after"]
    assert retry_after.isdigit() and 1 <= int(retry_after) <= 60, retry_after
    body = answer.json()
    assert set(body) == {"error", "request_id"} and body["request_id"] == answer.headers["x-request-id"]
    assert f"{limit} requests per minute" in body["error"] and "retry in" in body["error"]
    assert answer.headers["x-ratelimit-limit"] == str(limit) and answer.headers["x-ratelimit-remaining"] == "0"


async def test_a_key_over_its_limit_gets_429_and_other_keys_go_on(
    tmp_path: Path, broker_url: str, topic_prefix: str
) -> None:
    servers, running = await start_gateway(tmp_path, broker_url, topic_prefix, gateway_rate_limit="5/minute")
    try:
        async with await running.client(None) as anonymous:
            before = limited_count((await anonymous.get("/metrics")).text, "key")
        async with await running.client(Role.OPERATOR) as busy, await running.client(Role.VIEWER) as other:
            for n in range(5):
                answer = await busy.get("/api/v1/me")
                assert answer.status_code == 200, (n, answer.text)
                assert answer.headers["x-ratelimit-limit"] == "5"
                assert answer.headers["x-ratelimit-remaining"] == str(4 - n)
            assert_rate_limited(await busy.get("/api/v1/me"), 5)
            assert_rate_limited(await busy.get("/api/v1/config/detection"), 5)  # every API route, not one
            assert (await other.get("/api/v1/me")).json()["role"] == "viewer"
            metrics = (await other.get("/metrics")).text
        assert limited_count(metrics, "key") >= before + 2
    finally:
        await servers.stop()


async def test_refused_credentials_are_limited_per_address_so_keys_cannot_be_guessed(
    tmp_path: Path, broker_url: str, topic_prefix: str
) -> None:
    servers, running = await start_gateway(tmp_path, broker_url, topic_prefix, gateway_anonymous_rate_limit="5/minute")
    try:
        good = await running.key(Role.VIEWER)
        async with await running.client(None) as client:
            assert (await client.get("/api/v1/me", headers={"Authorization": f"Bearer {good}"})).status_code == 200
            for n in range(5):
                guess = f"aiops_{n:012x}_{'g' * 43}"
                refused = await client.get("/api/v1/me", headers={"X-API-Key": guess})
                assert refused.status_code == 401, (n, refused.text)
            # While the address's failures are spent, no credentials from it are checked, not even a good key.
            assert_rate_limited(await client.get("/api/v1/me", headers={"X-API-Key": f"aiops_{9:012x}_{'g' * 43}"}), 5)
            blocked = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {good}"})
            assert_rate_limited(blocked, 5)
            assert "refused credentials from this address" in blocked.json()["error"]
            metrics = (await client.get("/metrics")).text
        assert limited_count(metrics, "failed") >= 2
    finally:
        await servers.stop()


async def test_callers_without_credentials_are_limited_per_address(
    tmp_path: Path, broker_url: str, topic_prefix: str
) -> None:
    servers, running = await start_gateway(
        tmp_path,
        broker_url,
        topic_prefix,
        gateway_open_reads=True,
        gateway_anonymous_rate_limit="5/minute",
        gateway_rate_limit="100/minute",
    )
    try:
        async with await running.client(None) as anonymous, await running.client(Role.VIEWER) as keyed:
            for n in range(5):
                answer = await anonymous.get("/api/v1/me")
                assert answer.status_code == 200 and answer.json()["via"] == "anonymous", (n, answer.text)
                assert answer.headers["x-ratelimit-remaining"] == str(4 - n)
            throttled = await anonymous.get("/api/v1/me")
            assert_rate_limited(throttled, 5)
            assert "without credentials" in throttled.json()["error"]
            # A caller with a key from the same address counts against its key, not the address.
            answer = await keyed.get("/api/v1/me")
            assert answer.status_code == 200 and answer.headers["x-ratelimit-limit"] == "100"
            assert (await anonymous.get("/health")).status_code == 200  # probes are never limited
    finally:
        await servers.stop()
