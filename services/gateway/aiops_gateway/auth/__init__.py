"""Authentication (API keys, OIDC tokens), rate limits, roles, and the dependency every route uses."""

from __future__ import annotations

from aiops_gateway.auth.authenticator import Authenticator
from aiops_gateway.auth.dependencies import require
from aiops_gateway.auth.keys import ApiKey, KeyStore
from aiops_gateway.auth.roles import Principal, Role

__all__ = ["ApiKey", "Authenticator", "KeyStore", "Principal", "Role", "require"]
