"""Who a request comes from: an API key (``Authorization: Bearer aiops_…`` or ``X-API-Key``), an OIDC bearer
token, or nobody."""

from __future__ import annotations

import time

from fastapi import Request

from aiops_gateway.auth.keys import KeyStore, parse_key
from aiops_gateway.auth.roles import Principal
from aiops_gateway.errors import ApiError
from aiops_gateway.settings import GatewaySettings

__all__ = ["Authenticator", "credentials"]


def credentials(request: Request) -> str | None:
    """The token a request presents, if any."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    key = request.headers.get("x-api-key", "").strip()
    return key or None


class Authenticator:
    """Checks credentials; a key checked once is trusted for ``gateway_key_cache_s`` (revocation delay)."""

    def __init__(self, settings: GatewaySettings, keys: KeyStore) -> None:
        self.settings = settings
        self.keys = keys
        self._cache: dict[str, tuple[float, Principal | None]] = {}

    async def authenticate(self, request: Request) -> Principal | None:
        """The caller, or None when the request presents no credentials; bad credentials raise 401."""
        token = credentials(request)
        if token is None:
            return None
        if parse_key(token) is not None:
            principal = await self._key(token)
        else:
            raise ApiError(401, "not an API key (aiops_…) and OIDC is not configured", _challenge())
        if principal is None:
            raise ApiError(401, "unknown or revoked API key", _challenge())
        return principal

    async def _key(self, token: str) -> Principal | None:
        now = time.monotonic()
        cached = self._cache.get(token)
        if cached is not None and now - cached[0] < self.settings.gateway_key_cache_s:
            return cached[1]
        key = await self.keys.verify(token)
        principal = None if key is None else Principal(key.name, key.role, "key", key.id)
        if len(self._cache) > 10_000:
            self._cache.clear()  # bounded: a flood of made-up keys cannot grow it without end
        self._cache[token] = (now, principal)
        return principal


def _challenge() -> dict[str, str]:
    return {"WWW-Authenticate": 'Bearer realm="aiops"'}
