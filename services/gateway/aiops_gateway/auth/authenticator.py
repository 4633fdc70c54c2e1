"""Who a request comes from: an API key (``Authorization: Bearer aiops_…`` or ``X-API-Key``), an OIDC bearer
token, or nobody; and the rate limits each kind of caller is held to."""

from __future__ import annotations

import asyncio
import time

from aiops_common.service import ServiceStartError
from fastapi import Request

from aiops_gateway.auth.keys import KEY_PREFIX, KeyStore, parse_key
from aiops_gateway.auth.oidc import OidcVerifier
from aiops_gateway.auth.rate_limit import RateLimits
from aiops_gateway.auth.roles import Principal
from aiops_gateway.errors import ApiError
from aiops_gateway.settings import GatewaySettings

__all__ = ["Authenticator", "client_address", "credentials"]

#: Most API keys remembered at once; beyond it the entry checked longest ago goes (one more store read for it).
MAX_CACHED_KEYS = 10_000


def credentials(request: Request) -> str | None:
    """The token a request presents, if any (a header with another scheme is not a token: see ``authenticate``)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    key = request.headers.get("x-api-key", "").strip()
    return key or None


def client_address(request: Request) -> str:
    """The caller's address (uvicorn takes it from X-Forwarded-For only when a trusted proxy sent that)."""
    return request.client.host if request.client else "unknown"


class Authenticator:
    """Checks credentials; a key checked once is trusted for ``gateway_key_cache_s`` (revocation delay).

    Refused credentials count against the client address's limit of failures, and while that is spent no
    credentials from the address are checked at all (see :mod:`aiops_gateway.auth.rate_limit`).
    """

    def __init__(self, settings: GatewaySettings, keys: KeyStore) -> None:
        self.settings = settings
        self.keys = keys
        try:
            self.limits = RateLimits(settings.gateway_rate_limit, settings.gateway_anonymous_rate_limit)
            self.oidc = OidcVerifier(settings) if settings.gateway_oidc_issuer else None
        except ValueError as exc:
            raise ServiceStartError(str(exc)) from None
        # token -> (monotonic time checked, the principal or None for a refused key), oldest check first
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._checking: dict[str, asyncio.Future[Principal | None]] = {}

    async def authenticate(self, request: Request) -> Principal | None:
        """The caller, or None when the request presents no credentials; bad credentials raise 401."""
        token = credentials(request)
        header = request.headers.get("authorization", "")
        if token is None and not header.strip():
            return None
        address = client_address(request)
        self.limits.check_failures(address)
        try:
            if token is None:
                scheme = header.split(" ", 1)[0][:20]
                if scheme.lower() == "bearer":
                    raise ApiError(401, "the Authorization header has no token after 'Bearer'")
                raise ApiError(
                    401, f"the Authorization scheme {scheme!r} is not accepted; send 'Bearer <API key or token>'"
                )
            return await self._principal(token)
        except ApiError as exc:
            if exc.status in (401, 403):  # 403: a valid token without a role here, as costly to check as a bad one
                self.limits.failed(address)
            if exc.status == 401:
                exc.headers.setdefault("WWW-Authenticate", 'Bearer realm="aiops", error="invalid_token"')
            raise

    async def _principal(self, token: str) -> Principal:
        if token.startswith(KEY_PREFIX):
            if parse_key(token) is None:
                raise ApiError(401, "malformed API key: a key reads aiops_<id>_<secret>, as `aiops keys create` shows")
            principal = await self._key(token)
            if principal is None:
                raise ApiError(401, "unknown or revoked API key")
            return principal
        if self.oidc is None:
            raise ApiError(401, "not an API key (aiops_...) and this gateway accepts no OIDC tokens")
        return await self.oidc.verify(token)

    async def _key(self, token: str) -> Principal | None:
        now = time.monotonic()
        cached = self._cache.get(token)
        if cached is not None and now - cached[0] < self.settings.gateway_key_cache_s:
            return cached[1]
        # A key expiring from the cache under many concurrent requests is read once; the others wait for it.
        pending = self._checking.get(token)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Principal | None] = asyncio.get_running_loop().create_future()
        self._checking[token] = future
        try:
            key = await self.keys.verify(token)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it; nobody waiting is not an error
            raise
        finally:
            self._checking.pop(token, None)
        principal = None if key is None else Principal(key.name, key.role, "key", key.id)
        future.set_result(principal)
        self._remember(token, now, principal)
        return principal

    def _remember(self, token: str, now: float, principal: Principal | None) -> None:
        # Re-inserted at the end, so the first entry is always the one checked longest ago: bounded, O(1).
        self._cache.pop(token, None)
        while len(self._cache) >= MAX_CACHED_KEYS:
            del self._cache[next(iter(self._cache))]
        self._cache[token] = (now, principal)
