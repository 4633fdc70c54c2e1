"""Fixtures shared by every service's tests: the embedded broker, unique topics, external binaries."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiops_common.broker import EmbeddedBroker, Publisher, ensure_topics
from aiops_common.testing import ExternalServer

S = TypeVar("S", bound=ExternalServer)


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


@pytest.fixture
async def publisher(broker_url: str, topic_prefix: str) -> AsyncIterator[Publisher]:
    """An acknowledged publisher on this test's topics (every topic of the table declared)."""
    await ensure_topics(broker_url, topic_prefix)
    pub = Publisher(broker_url, topic_prefix)
    await pub.start()
    yield pub
    await pub.stop()


@pytest.fixture
def external_server(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Start a real server (PrometheusServer, AlertmanagerServer, NodeExporter...) for this test.

    ``external_server(PrometheusServer, config=...)``; stopped after the test. A missing
    binary skips locally and fails under ``AIOPS_REQUIRE_INTEGRATION=1``.
    """
    started: list[ExternalServer] = []

    def start(cls: type[S], **kwargs: Any) -> S:
        if cls.binary() is None:
            require_binary(*cls.binary_names)
        server = cls(tmp_path / f"{cls.__name__.lower()}-{len(started)}", **kwargs)
        server.start()
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.stop()


REPO_ROOT = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    """``AIOPS_DATASETS_DIR``, by default ``../shared/datasets`` next to the repository; skip when missing."""
    path = Path(os.environ.get("AIOPS_DATASETS_DIR", REPO_ROOT.parent / "shared" / "datasets"))
    if not path.is_dir():
        pytest.skip(f"datasets folder {path} not found (set AIOPS_DATASETS_DIR)")
    return path


@pytest.fixture(scope="session")
def nab_dir(datasets_dir: Path) -> Path:
    path = datasets_dir / "nab"
    if not (path / "labels" / "combined_windows.json").is_file():
        pytest.skip(f"NAB not found under {path}")
    return path
