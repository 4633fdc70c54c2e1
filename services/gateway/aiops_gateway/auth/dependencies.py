"""The route dependency that authenticates, authorises and rate-limits: ``Depends(require(Role.OPERATOR))``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request

from aiops_gateway.auth.roles import Principal, Role
from aiops_gateway.context import gateway
from aiops_gateway.errors import ApiError

__all__ = ["ANONYMOUS", "require"]

ANONYMOUS = Principal("anonymous", Role.VIEWER, "anonymous")


def require(role: Role) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency answering 401 without valid credentials and 403 when the caller's role is below ``role``.

    Reads (``Role.VIEWER``) are open to callers without credentials when ``AIOPS_GATEWAY_OPEN_READS`` is set.
    """

    async def dependency(request: Request) -> Principal:
        gw = gateway(request)
        principal = await gw.auth.authenticate(request)
        if principal is None:
            if role is Role.VIEWER and gw.settings.gateway_open_reads:
                principal = ANONYMOUS
            else:
                raise ApiError(401, "this route needs an API key or a bearer token", {"WWW-Authenticate": "Bearer"})
        if not principal.allows(role):
            raise ApiError(403, f"{principal.name} is {principal.role.value}; this needs {role.value} or above")
        request.state.principal = principal
        return principal

    return dependency
