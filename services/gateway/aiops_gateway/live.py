"""The live feed behind ``GET /api/v1/events``: incidents and RCA results as they are published.

Every gateway replica reads the topics itself (no consumer group: each needs every record), from their end
when it starts, and fans each record out to the connected clients.
"""

from __future__ import annotations

from aiops_gateway.settings import GatewaySettings

__all__ = ["LiveFeed"]


class LiveFeed:
    def __init__(self, settings: GatewaySettings, broker_url: str) -> None:
        self.settings = settings
        self.broker_url = broker_url

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None
