"""Fixtures shared by every service's tests: the embedded broker, unique topics, external binaries."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator

import pytest

from aiops_common.broker import EmbeddedBroker


def require_binary(name: str, *candidates: str) -> str:
    """Path of an external program a test needs.

    Missing: skip locally, but fail under ``AIOPS_REQUIRE_INTEGRATION=1`` (set by CI)
    so an integration test can never silently not run there.
    """
    for candidate in (name, *candidates):
        path = shutil.which(candidate)
        if path:
            return path
    message = f"{name} is not installed (apt-get install it, see .ci/run)"
    if os.environ.get("AIOPS_REQUIRE_INTEGRATION") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def broker_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One embedded Tansu broker for the test session; tests isolate themselves by topic prefix."""
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(log_path=log) as broker:
        yield broker.url


@pytest.fixture
def topic_prefix() -> str:
    """A prefix no other test uses, so topics and consumer groups are never shared."""
    return f"t{uuid.uuid4().hex[:10]}."
