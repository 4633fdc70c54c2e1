"""API keys: the text's shape, verification (wrong secret, revoked, malformed, unknown), revocation, and the
authenticator's bounded cache of checked keys."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiops_common.documents import DocumentStore, open_document_store
from aiops_gateway.auth import authenticator as authenticator_module
from aiops_gateway.auth.authenticator import Authenticator
from aiops_gateway.auth.keys import KeyStore, is_key_id, name_problem, parse_key
from aiops_gateway.auth.roles import Role
from aiops_gateway.errors import ApiError
from aiops_gateway.settings import GatewaySettings
from starlette.requests import Request

pytestmark = pytest.mark.unit


@pytest.fixture
async def documents() -> AsyncIterator[DocumentStore]:
    store = open_document_store("sqlite:///:memory:")
    yield store
    await store.close()


def request_with(authorization: str, client: str = "192.0.2.7") -> Request:
    headers = [(b"authorization", authorization.encode("latin-1"))] if authorization else []
    return Request({"type": "http", "method": "GET", "path": "/api/v1/me", "headers": headers, "client": (client, 1)})


def test_a_key_reads_prefix_id_secret() -> None:
    secret = "s" * 43
    assert parse_key(f"aiops_0123456789ab_{secret}") == ("0123456789ab", secret)
    assert parse_key(f"aiops_0123456789ab_{'a_b-c' * 9}") == ("0123456789ab", "a_b-c" * 9)  # "_" in the secret


@pytest.mark.parametrize(
    "text",
    [
        "",
        "aiops_",
        "aiops_0123456789ab",
        "aiops_0123456789ab_",
        f"aiops__{'s' * 43}",
        f"AIOPS_0123456789ab_{'s' * 43}",
        f"aiops_0123456789AB_{'s' * 43}",  # ids are lower-case hex
        f"aiops_../../etc_{'s' * 43}",
        f"aiops_0123456789ab_{'s' * 8}",  # too short to be a secret this code made
        f"aiops_0123456789ab_{'s' * 40}!!!",
        f"aiops_0123456789ab_{'s' * 400}",
        f"Bearer aiops_0123456789ab_{'s' * 43}",
    ],
)
def test_malformed_keys_are_not_parsed(text: str) -> None:
    assert parse_key(text) is None


def test_key_ids_and_names() -> None:
    assert is_key_id("0123456789ab") and not is_key_id("xyz") and not is_key_id("")
    assert name_problem("ci-deploy") == ""
    assert "needs a name" in name_problem("  ")
    assert "one printable line" in name_problem("two\nlines")
    assert "one printable line" in name_problem("x" * 201)


async def test_verify_accepts_the_key_and_refuses_everything_else(documents: DocumentStore) -> None:
    keys = KeyStore(documents)
    key, text = await keys.create(" ci-deploy ", Role.OPERATOR, "alice")
    assert key.name == "ci-deploy" and key.role is Role.OPERATOR and key.status == "active"
    assert text.startswith(f"aiops_{key.id}_") and parse_key(text) is not None
    assert "hash" in (await documents.get("api_keys", key.id)).body  # type: ignore[union-attr]
    assert text.split("_", 2)[2] not in str((await documents.get("api_keys", key.id)).body)  # type: ignore[union-attr]

    verified = await keys.verify(text)
    assert verified is not None and verified.id == key.id and verified.created_by == "alice"

    key_id, secret = parse_key(text)  # type: ignore[misc]
    wrong_secret = f"aiops_{key_id}_{secret[:-1]}{'A' if secret[-1] != 'A' else 'B'}"
    assert await keys.verify(wrong_secret) is None
    assert await keys.verify(f"aiops_{'0' * 12}_{secret}") is None  # no such id
    assert await keys.verify(text[:-20]) is None  # truncated
    assert await keys.verify(f"{text} ") is None
    assert await keys.verify("aiops_nope_nope") is None


async def test_revoked_keys_stop_verifying_and_revoking_twice_changes_nothing(documents: DocumentStore) -> None:
    keys = KeyStore(documents)
    key, text = await keys.create("dashboard", Role.VIEWER, "alice")
    other, other_text = await keys.create("ci", Role.OPERATOR, "alice")
    revoked = await keys.revoke(key.id)
    assert revoked is not None and revoked.status == "revoked" and revoked.revoked_at is not None
    assert await keys.verify(text) is None
    assert await keys.verify(other_text) is not None
    again = await keys.revoke(key.id)
    assert again is not None and again.revoked_at == revoked.revoked_at
    assert await keys.revoke("0" * 12) is None
    assert await keys.revoke("not-an-id") is None
    assert [k.id for k in await keys.list()] == [other.id]
    assert {k.id: k.status for k in await keys.list(include_revoked=True)} == {key.id: "revoked", other.id: "active"}
    assert (await keys.get(key.id)).status == "revoked"  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="needs a name"):
        await keys.create("", Role.ADMIN, "alice")


async def test_an_entry_this_code_did_not_write_grants_nothing(documents: DocumentStore) -> None:
    keys = KeyStore(documents)
    key, text = await keys.create("odd", Role.ADMIN, "alice")
    stored = await documents.get("api_keys", key.id)
    assert stored is not None
    await documents.upsert("api_keys", key.id, {**stored.body, "role": "superuser"})
    assert await keys.verify(text) is None


async def test_authenticator_refuses_bad_keys_and_keeps_its_cache_bounded(
    documents: DocumentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(authenticator_module, "MAX_CACHED_KEYS", 5)
    auth = Authenticator(GatewaySettings(gateway_anonymous_rate_limit="1000/minute"), KeyStore(documents))
    _, text = await auth.keys.create("ops", Role.OPERATOR, "alice")
    principal = await auth.authenticate(request_with(f"Bearer {text}"))
    assert principal is not None and (principal.name, principal.role, principal.via) == ("ops", Role.OPERATOR, "key")
    assert await auth.authenticate(request_with("")) is None

    for n in range(12):
        with pytest.raises(ApiError) as refused:
            await auth.authenticate(request_with(f"Bearer aiops_{n:012x}_{'s' * 43}"))
        assert refused.value.status == 401 and refused.value.message == "unknown or revoked API key"
        assert 'error="invalid_token"' in refused.value.headers["WWW-Authenticate"]
        assert len(auth._cache) <= 5
    principal = await auth.authenticate(request_with(f"Bearer {text}"))  # pushed out, read again
    assert principal is not None and principal.role is Role.OPERATOR

    for header, message in [
        ("Basic dXNlcjpwYXNz", "scheme 'Basic' is not accepted"),
        ("Bearer", "no token after 'Bearer'"),
        ("Bearer aiops_short", "malformed API key"),
        ("Bearer eyJhbGciOi.not-a-jwt", "accepts no OIDC tokens"),
    ]:
        with pytest.raises(ApiError) as refused:
            await auth.authenticate(request_with(header))
        assert refused.value.status == 401 and message in refused.value.message, refused.value.message
