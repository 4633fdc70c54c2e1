"""The gateway as the platform finds it (entry point ``aiops.services``: ``gateway``)."""

from __future__ import annotations

from aiops_common.service import ServiceSpec

__all__ = ["SERVICE"]

SERVICE = ServiceSpec(
    name="gateway",
    settings_class="aiops_gateway.settings:GatewaySettings",
    install="aiops_gateway.worker:install",
    servers="aiops_gateway.servers:GatewayServers",
    commands="aiops_gateway.cli:commands",
    order=90,
)
