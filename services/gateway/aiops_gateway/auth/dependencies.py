"""The route dependency that authenticates, rate-limits and authorises: ``Depends(require(Role.OPERATOR))``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request, Response

from aiops_gateway.auth.authenticator import client_address
from aiops_gateway.auth.roles import Principal, Role
from aiops_gateway.context import gateway
from aiops_gateway.errors import ApiError

__all__ = ["ANONYMOUS", "require"]

ANONYMOUS = Principal("anonymous", Role.VIEWER, "anonymous")


def require(role: Role) -> Callable[[Request, Response], Awaitable[Principal]]:
    """A dependency answering 401 without valid credentials, 429 over the caller's rate limit and 403 when the
    caller's role is below ``role``.

    Reads (``Role.VIEWER``) are open to callers without credentials when ``AIOPS_GATEWAY_OPEN_READS`` is set; they
    are limited per client address. Answers built from a route's return value carry ``X-RateLimit-Limit`` and
    ``X-RateLimit-Remaining``; a route that returns its own Response object (a stream, a forwarded answer) does not.
    """

    async def dependency(request: Request, response: Response) -> Principal:
        gw = gateway(request)
        principal: Principal | None = getattr(request.state, "principal", None)
        headers: dict[str, str] = {}
        if principal is None:  # counted once per request, however many dependencies ask
            principal = await gw.auth.authenticate(request)
            if principal is None:
                verdict = gw.auth.limits.without_credentials(client_address(request))
                if not (role is Role.VIEWER and gw.settings.gateway_open_reads):
                    raise _needs_credentials()
                principal = ANONYMOUS
            else:
                verdict = gw.auth.limits.principal(principal.identity, principal.via)
            request.state.principal = principal
            headers = verdict.headers()
            response.headers.update(headers)
        if principal is ANONYMOUS and role is not Role.VIEWER:
            raise _needs_credentials()
        if not principal.allows(role):
            raise ApiError(
                403, f"{principal.name} is {principal.role.value}; this needs {role.value} or above", headers
            )
        return principal

    return dependency


def _needs_credentials() -> ApiError:
    return ApiError(401, "this route needs an API key or a bearer token", {"WWW-Authenticate": 'Bearer realm="aiops"'})
