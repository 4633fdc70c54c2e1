"""Who is calling and what they may do: four roles, each allowed everything the ones below it are."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Principal", "Role"]


class Role(enum.StrEnum):
    VIEWER = "viewer"  # reads
    OPERATOR = "operator"  # incident lifecycle, feedback, writes through the ingestion routes, runbook requests
    APPROVER = "approver"  # approves or rejects runbook executions
    ADMIN = "admin"  # configuration, topology, API keys

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


_RANKS = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.APPROVER: 2, Role.ADMIN: 3}


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: ``name`` goes into audit entries and incident history."""

    name: str
    role: Role
    via: str  # "key", "oidc" or "anonymous" (open reads)
    key_id: str = ""  # the API key's id, or the token's subject

    def allows(self, needed: Role) -> bool:
        return self.role.allows(needed)

    @property
    def identity(self) -> str:
        """What rate limits count against: the key or token subject; anonymous callers share one."""
        return f"{self.via}:{self.key_id or self.name}"
