"""The gateway's worker: its server is the whole service (``servers.GatewayServers``); it runs no agents."""

from __future__ import annotations

import faust

from aiops_gateway.settings import GatewaySettings

__all__ = ["install"]


def install(app: faust.App, settings: GatewaySettings) -> None:
    """No agents: the gateway reads the stores and topics itself and publishes through its own producer."""
