"""API keys: made here, shown once, kept only as a hash in the document store's ``api_keys`` collection.

A key reads ``aiops_<id>_<secret>``: the id finds the stored entry, the secret (32 random bytes) is compared with
its SHA-256 in constant time. A fast hash suffices because the secret is random, not a password someone chose.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiops_common.documents import DocumentFilter, DocumentStore

from aiops_gateway.auth.roles import Role

__all__ = ["KEY_PREFIX", "ApiKey", "KeyStore", "is_key_id", "name_problem", "parse_key"]

KEY_PREFIX = "aiops_"
_COLLECTION = "api_keys"
# What create makes (12 hex digits, 43 URL-safe characters), with room to spare; anything else is refused before
# the store is asked, so odd ids never reach a store's query syntax.
_KEY_ID = re.compile(r"[0-9a-f]{8,32}")
_SECRET = re.compile(r"[A-Za-z0-9_-]{16,128}")


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored key without its secret."""

    id: str
    name: str
    role: Role
    created_at: datetime
    created_by: str
    status: str  # "active" or "revoked"
    revoked_at: datetime | None = None

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> ApiKey:
        revoked = body.get("revoked_at")
        return cls(
            id=body["id"],
            name=body["name"],
            role=Role(body["role"]),
            created_at=datetime.fromisoformat(body["created_at"]),
            created_by=body.get("created_by", ""),
            status=body["status"],
            revoked_at=datetime.fromisoformat(revoked) if revoked else None,
        )

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role.value,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "status": self.status,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_key(token: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed key, else None."""
    if not token.startswith(KEY_PREFIX):
        return None
    key_id, sep, secret = token.removeprefix(KEY_PREFIX).partition("_")
    if not sep or not _KEY_ID.fullmatch(key_id) or not _SECRET.fullmatch(secret):
        return None
    return key_id, secret


def is_key_id(text: str) -> bool:
    """Whether ``text`` could be a key's id (as `aiops keys list` shows it)."""
    return _KEY_ID.fullmatch(text) is not None


def name_problem(name: str) -> str:
    """Why ``name`` cannot name a key ("" when it can): it shows in audit entries and listings."""
    if not name.strip():
        return "a key needs a name (who or what uses it)"
    if len(name.strip()) > 200 or not name.strip().isprintable():
        return "a key's name is one printable line of at most 200 characters"
    return ""


class KeyStore:
    """Create, list, revoke and check API keys in a document store."""

    def __init__(self, documents: DocumentStore) -> None:
        self.documents = documents

    async def create(self, name: str, role: Role, by: str, now: datetime | None = None) -> tuple[ApiKey, str]:
        """A new key and its full text (``aiops_<id>_<secret>``), which is shown once and never stored."""
        problem = name_problem(name)
        if problem:
            raise ValueError(problem)
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        at = now or datetime.now(UTC)
        key = ApiKey(key_id, name.strip(), role, at, by, "active")
        body = {**key.public(), "hash": _digest(secret)}
        await self.documents.upsert(_COLLECTION, key_id, body, expected_version=0)
        await self.documents.refresh(_COLLECTION)
        return key, f"{KEY_PREFIX}{key_id}_{secret}"

    async def list(self, include_revoked: bool = False) -> list[ApiKey]:
        where = DocumentFilter() if include_revoked else DocumentFilter(status="active")
        keys: list[ApiKey] = []
        cursor: str | None = None
        while True:
            page = await self.documents.query(_COLLECTION, where, oldest_first=True, limit=500, cursor=cursor)
            keys.extend(ApiKey.from_body(d.body) for d in page.documents)
            if page.cursor is None:
                return keys
            cursor = page.cursor

    async def get(self, key_id: str) -> ApiKey | None:
        """The key with this id (active or revoked), else None."""
        if not is_key_id(key_id):
            return None
        doc = await self.documents.get(_COLLECTION, key_id)
        return None if doc is None else ApiKey.from_body(doc.body)

    async def revoke(self, key_id: str, now: datetime | None = None) -> ApiKey | None:
        """Revoke a key; None when there is no such key. Revoking a revoked key changes nothing."""
        if not is_key_id(key_id):
            return None
        doc = await self.documents.get(_COLLECTION, key_id)
        if doc is None:
            return None
        if doc.body.get("status") == "revoked":
            return ApiKey.from_body(doc.body)
        body = {**doc.body, "status": "revoked", "revoked_at": (now or datetime.now(UTC)).isoformat()}
        await self.documents.upsert(_COLLECTION, key_id, body, expected_version=doc.version)
        await self.documents.refresh(_COLLECTION)
        return ApiKey.from_body(body)

    async def verify(self, token: str) -> ApiKey | None:
        """The active key ``token`` is, else None (malformed, unknown, wrong secret or revoked)."""
        parsed = parse_key(token)
        if parsed is None:
            return None
        key_id, secret = parsed
        doc = await self.documents.get(_COLLECTION, key_id)
        if doc is None or doc.body.get("status") != "active":
            return None
        if not hmac.compare_digest(str(doc.body.get("hash", "")), _digest(secret)):
            return None
        try:
            return ApiKey.from_body(doc.body)
        except (KeyError, ValueError):  # an entry this code did not write grants nothing
            return None
