"""OIDC bearer tokens against a real gateway and a JWKS served from a real local HTTP server: a good token is
accepted with its role and name; expired, wrong audience, wrong issuer, bad signature, unknown key, ``alg: none``
and HMAC-with-the-public-key tokens are refused with 401 and the reason; no known role is a 403."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from aiohttp import web
from aiops_common.broker.addresses import free_port
from aiops_common.testing.eventually import eventually
from aiops_gateway.auth import Role
from aiops_gateway.testing import RunningGateway, start_gateway
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

pytestmark = pytest.mark.functional

AUDIENCE = "aiops-gateway"


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "use": "sig", "alg": "RS256"}


class Issuer:
    """An OIDC issuer's JWKS endpoint on a loopback port, and tokens signed by its keys."""

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {"k1": rsa_key()}
        self.fetches = 0
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        async def jwks(_: web.Request) -> web.Response:
            self.fetches += 1
            return web.json_response({"keys": [public_jwk(k, kid) for kid, k in self.keys.items()]})

        app = web.Application()
        app.router.add_get("/.well-known/jwks.json", jwks)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.url,
            "aud": AUDIENCE,
            "sub": "user-1234",
            "preferred_username": "alice",
            "email": "alice@example.com",
            "iat": now,
            "exp": now + 300,
            "roles": ["operator"],
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, kid: str = "k1", key: rsa.RSAPrivateKey | None = None, **claims: Any) -> str:
        return self.sign(self.claims(**claims), kid, key)

    def sign(self, claims: dict[str, Any], kid: str = "k1", key: rsa.RSAPrivateKey | None = None) -> str:
        return jwt.encode(claims, key or self.keys[kid], algorithm="RS256", headers={"kid": kid})


def hs256_with_public_key(issuer: Issuer) -> str:
    """The classic confusion attack: an HMAC token whose secret is the issuer's public key, which anyone has."""
    pem = (
        issuer.keys["k1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode()
    signing_input = f"{b64(header)}.{b64(json.dumps(issuer.claims()).encode())}"
    signature = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


@pytest.fixture
async def issuer() -> AsyncIterator[Issuer]:
    server = Issuer()
    await server.start()
    yield server
    await server.stop()


async def oidc_gateway(
    tmp_path: Path, broker_url: str, topic_prefix: str, issuer: Issuer, **overrides: Any
) -> tuple[Any, RunningGateway]:
    return await start_gateway(
        tmp_path, broker_url, topic_prefix, gateway_oidc_issuer=issuer.url, gateway_oidc_audience=AUDIENCE, **overrides
    )


async def me(running: RunningGateway, token: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=running.url, timeout=30.0) as client:
        return await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})


async def test_tokens_of_the_issuer_are_accepted_and_every_bad_one_refused_with_its_reason(
    tmp_path: Path, broker_url: str, topic_prefix: str, issuer: Issuer
) -> None:
    servers, running = await oidc_gateway(tmp_path, broker_url, topic_prefix, issuer)
    try:
        good = await me(running, issuer.token())
        assert good.status_code == 200, good.text
        assert good.json() == {"name": "alice", "role": "operator", "via": "oidc"}
        highest = await me(running, issuer.token(roles=["viewer", "Admin", "auditor"], preferred_username=None))
        assert highest.json() == {"name": "alice@example.com", "role": "admin", "via": "oidc"}
        by_subject = await me(running, issuer.token(roles="viewer", preferred_username=None, email=None))
        assert by_subject.json() == {"name": "user-1234", "role": "viewer", "via": "oidc"}
        assert issuer.fetches == 1  # the set is kept

        now = int(time.time())
        stranger = rsa_key()
        refusals = {
            "expired": (issuer.token(exp=now - 600, iat=now - 900), "has expired"),
            "not yet valid": (issuer.token(nbf=now + 600), "not valid yet"),
            "wrong audience": (issuer.token(aud="another-app"), "for another audience"),
            "wrong issuer": (issuer.token(iss="https://evil.example.com"), "from another issuer"),
            "bad signature": (issuer.token(key=stranger), "signature does not verify"),
            "unknown kid": (issuer.token(kid="k9", key=stranger), "key 'k9' the issuer does not publish"),
            "alg none": (jwt.encode(issuer.claims(), "", algorithm="none"), "signed with 'none'"),
            "hs256 with the public key": (hs256_with_public_key(issuer), "signed with 'HS256'"),
            "no subject": (issuer.token(sub=None), "lacks the 'sub' claim"),
            "no expiry": (issuer.token(exp=None), "lacks the 'exp' claim"),
            "garbage": ("not.a.token", "well-formed JWT"),
        }
        for case, (token, reason) in refusals.items():
            refused = await me(running, token)
            assert refused.status_code == 401, (case, refused.text)
            assert reason in refused.json()["error"], (case, refused.json())
            assert refused.json()["request_id"] == refused.headers["x-request-id"]
            assert 'error="invalid_token"' in refused.headers["www-authenticate"], case

        no_role = await me(running, issuer.token(roles=["auditor", "billing"]))
        assert no_role.status_code == 403, no_role.text
        assert "names no role of this gateway" in no_role.json()["error"]
        assert "auditor" in no_role.json()["error"]
        no_claim = await me(running, issuer.token(roles=None))
        assert no_claim.status_code == 403 and "no such claim" in no_claim.json()["error"]

        async with await running.client(Role.VIEWER) as with_key:  # API keys keep working beside OIDC
            assert (await with_key.get("/api/v1/me")).json()["via"] == "key"
    finally:
        await servers.stop()


async def test_a_nested_role_claim_names_the_role(
    tmp_path: Path, broker_url: str, topic_prefix: str, issuer: Issuer
) -> None:
    servers, running = await oidc_gateway(
        tmp_path, broker_url, topic_prefix, issuer, gateway_oidc_role_claim="realm_access.roles"
    )
    try:
        keycloak_like = issuer.token(roles=None, realm_access={"roles": ["offline_access", "approver"]})
        answer = await me(running, keycloak_like)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"name": "alice", "role": "approver", "via": "oidc"}
        flat = await me(running, issuer.token(roles=["admin"]))  # the top-level claim is not the configured one
        assert flat.status_code == 403 and "realm_access.roles" in flat.json()["error"]
    finally:
        await servers.stop()


async def test_a_namespaced_role_claim_with_dots_in_its_name_is_read_whole(
    tmp_path: Path, broker_url: str, topic_prefix: str, issuer: Issuer
) -> None:
    claim = "https://ops.example.com/roles"
    servers, running = await oidc_gateway(tmp_path, broker_url, topic_prefix, issuer, gateway_oidc_role_claim=claim)
    try:
        answer = await me(running, issuer.sign({**issuer.claims(roles=None), claim: "Operator"}))
        assert answer.status_code == 200, answer.text
        assert answer.json()["role"] == "operator"
        split = await me(running, issuer.sign({**issuer.claims(roles=None), claim: "Site Admin"}))  # one name, not two
        assert split.status_code == 403 and "Site Admin" in split.json()["error"]
    finally:
        await servers.stop()


async def test_unknown_key_ids_refetch_the_set_at_most_once_per_interval(
    tmp_path: Path, broker_url: str, topic_prefix: str, issuer: Issuer
) -> None:
    servers, running = await oidc_gateway(tmp_path, broker_url, topic_prefix, issuer)
    try:
        assert (await me(running, issuer.token())).status_code == 200
        stranger = rsa_key()
        for n in range(20):
            refused = await me(running, issuer.token(kid=f"made-up-{n}", key=stranger))
            assert refused.status_code == 401 and "does not publish" in refused.json()["error"]
        assert issuer.fetches <= 2, issuer.fetches  # the first load, and at most one refetch in 30 s

        # The issuer rotates in a new key; once the interval has passed, a token signed with it is accepted.
        verifier = running.gateway.auth.oidc
        assert verifier is not None
        verifier.refetch_after_s = 0.2
        issuer.keys["k2"] = rsa_key()

        async def accepted() -> bool:
            answer = await me(running, issuer.token(kid="k2"))
            assert answer.status_code == 200, answer.text
            return True

        await eventually(accepted, timeout=20, what="a token signed with the rotated-in key to be accepted")
    finally:
        await servers.stop()


async def test_an_unreachable_issuer_is_a_503_not_a_refusal(
    tmp_path: Path, broker_url: str, topic_prefix: str, issuer: Issuer
) -> None:
    servers, running = await oidc_gateway(
        tmp_path, broker_url, topic_prefix, issuer, gateway_oidc_jwks_url=f"http://127.0.0.1:{free_port()}/jwks"
    )
    try:
        answer = await me(running, issuer.token())
        assert answer.status_code == 503, answer.text
        assert "signing keys" in answer.json()["error"] and "cannot be fetched" in answer.json()["error"]
        assert int(answer.headers["retry-after"]) >= 1
    finally:
        await servers.stop()


async def test_settings_that_would_accept_forged_tokens_stop_the_gateway_at_start(
    tmp_path: Path, broker_url: str, topic_prefix: str, issuer: Issuer
) -> None:
    from aiops_common.service import ServiceStartError

    with pytest.raises(ServiceStartError, match="HS256"):
        await oidc_gateway(tmp_path, broker_url, topic_prefix, issuer, gateway_oidc_algorithms=["RS256", "HS256"])
    with pytest.raises(ServiceStartError, match="AUDIENCE"):
        await start_gateway(tmp_path, broker_url, topic_prefix, gateway_oidc_issuer=issuer.url)
