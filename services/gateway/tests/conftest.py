"""A real gateway for each test: uvicorn on a free loopback port, SQLite stores in the test's folder, the session's
embedded broker under the test's own topic prefix."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiops_gateway.testing import RunningGateway, start_gateway


@pytest.fixture
async def running_gateway(tmp_path: Path, broker_url: str, topic_prefix: str) -> AsyncIterator[RunningGateway]:
    """The gateway with its defaults (reads need a key)."""
    servers, running = await start_gateway(tmp_path, broker_url, topic_prefix)
    try:
        yield running
    finally:
        await servers.stop()
