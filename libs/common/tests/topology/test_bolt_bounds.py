"""The Bolt store never hangs its caller: a server that accepts connections and never answers (a stopped
process, a hung host) and a port nothing listens on each fail a read and a write within ``timeout_s``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aiops_common.broker import free_port
from aiops_common.topology import Dependency, TopologyStore, open_topology_store
from neo4j.exceptions import ServiceUnavailable

pytestmark = pytest.mark.functional

TIMEOUT_S = 0.5
SLACK_S = 5.0
"""What a loaded machine may add to the bound (scheduling, closing the dropped connection)."""


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A loopback port that accepts connections and reads what comes, never answering (not even the handshake)."""
    held: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        while await reader.read(65536):
            pass

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


async def _timed_failures(store: TopologyStore) -> list[tuple[str, BaseException, float]]:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    calls = {
        "services": store.services,
        "neighbourhood": lambda: store.neighbourhood(["a"], 2),
        "upsert_dependencies": lambda: store.upsert_dependencies([Dependency("a", "b", frozenset({"x"}), at, at)]),
    }
    failures = []
    for name, call in calls.items():
        started = time.monotonic()
        with pytest.raises(Exception) as raised:  # which error: asserted by the caller
            await call()
        failures.append((name, raised.value, time.monotonic() - started))
    return failures


async def test_a_server_that_never_answers_times_out_every_call(silent_port: int) -> None:
    store = open_topology_store(f"bolt://127.0.0.1:{silent_port}?timeout_s={TIMEOUT_S}")
    try:
        for name, error, took in await _timed_failures(store):
            assert isinstance(error, TimeoutError), (name, repr(error))
            assert f"127.0.0.1:{silent_port}" in str(error) and "did not answer within 0.5 s" in str(error)
            assert TIMEOUT_S * 0.9 <= took <= TIMEOUT_S + SLACK_S, (name, took)
    finally:
        await store.close()


async def test_a_port_nothing_listens_on_fails_within_the_bound() -> None:
    store = open_topology_store(f"bolt://127.0.0.1:{free_port()}?timeout_s={TIMEOUT_S}")
    try:
        for name, error, took in await _timed_failures(store):
            # Refused connections are tried again until the bound, then the driver's own error says why.
            assert isinstance(error, ServiceUnavailable | TimeoutError), (name, repr(error))
            assert took <= TIMEOUT_S + SLACK_S, (name, took)
    finally:
        await store.close()


def test_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="timeout_s must be positive"):
        open_topology_store("bolt://127.0.0.1:7687?timeout_s=0")
