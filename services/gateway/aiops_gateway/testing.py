"""Tests' gateway: a real server on a free loopback port with the stores of a data folder (used by the tests of
this service and the platform's end-to-end tests)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiops_common.broker import ensure_topics
from aiops_common.broker.addresses import free_port

from aiops_gateway.auth import Role
from aiops_gateway.context import Gateway
from aiops_gateway.servers import GatewayServers
from aiops_gateway.settings import GatewaySettings

__all__ = ["RunningGateway", "start_gateway"]


@dataclass
class RunningGateway:
    """The server under test: its URL, settings, the :class:`Gateway` it serves (stores, publisher), and keys."""

    url: str
    settings: GatewaySettings
    gateway: Gateway
    keys: dict[Role, str] = field(default_factory=dict)

    async def key(self, role: Role) -> str:
        """An API key of ``role`` (one per role per test, made on first use)."""
        if role not in self.keys:
            _, text = await self.gateway.auth.keys.create(f"test-{role.value}", role, "tests")
            self.keys[role] = text
        return self.keys[role]

    async def client(self, role: Role | None = Role.ADMIN) -> httpx.AsyncClient:
        """A client of the API with a key of ``role`` (None: no credentials); close it (``async with``)."""
        headers = {} if role is None else {"Authorization": f"Bearer {await self.key(role)}"}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30.0)


async def start_gateway(
    tmp_path: Path, broker_url: str, topic_prefix: str, **overrides: Any
) -> tuple[GatewayServers, RunningGateway]:
    """A gateway on a free port. Tests write documents straight to its stores and read them back at once, so the
    list answer cache is off unless ``gateway_list_cache_s`` is given."""
    await ensure_topics(broker_url, topic_prefix)
    settings = GatewaySettings(
        data_dir=tmp_path / "data",
        topic_prefix=topic_prefix,
        gateway_port=free_port(),
        **{"gateway_list_cache_s": 0.0, **overrides},
    )
    servers = GatewayServers(settings, broker_url)
    await servers.start()
    return servers, RunningGateway(settings.url, settings, servers.gateway)
