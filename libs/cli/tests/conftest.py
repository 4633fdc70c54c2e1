"""A whole platform (``aiops up``) started for a test on free ports, and the CLI run against it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from aiops_common.broker import free_port


def aiops(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the ``aiops`` CLI with ``env``; its output as text."""
    return subprocess.run(
        [sys.executable, "-m", "aiops_cli", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


@dataclass
class Platform:
    proc: subprocess.Popen[bytes]
    env: dict[str, str]
    http_url: str
    log: Path


StartPlatform = Callable[..., Platform]


@pytest.fixture
def start_platform(tmp_path: Path) -> Iterator[StartPlatform]:
    """``start_platform(*up_args, **env)``: ``aiops up`` on free ports, ready; killed after the test if still up."""
    started: list[Platform] = []

    def start(*args: str, **extra_env: str) -> Platform:
        http_port = free_port()
        env = {
            **os.environ,
            "AIOPS_DATA_DIR": str(tmp_path / "data"),
            "AIOPS_INGEST_HTTP_PORT": str(http_port),
            "AIOPS_INGEST_GRPC_PORT": str(free_port()),
            "AIOPS_LOG_LEVEL": "WARNING",
            **extra_env,
        }
        env.pop("AIOPS_BROKER_URL", None)
        log = tmp_path / "up.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "aiops_cli", "up", *args], env=env, stdout=out, stderr=out)
        platform = Platform(proc, env, f"http://127.0.0.1:{http_port}", log)
        started.append(platform)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                if httpx.get(platform.http_url + "/ready", timeout=1).status_code == 200:
                    return platform
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        pytest.fail("aiops up did not become ready: " + log.read_text()[-3000:])

    yield start
    for platform in started:
        if platform.proc.poll() is None:
            # SIGTERM stops servers, agents and the embedded broker (its own session: a SIGKILL here would orphan it).
            platform.proc.terminate()
            try:
                platform.proc.wait(30)
            except subprocess.TimeoutExpired:
                platform.proc.kill()
                platform.proc.wait()


@pytest.fixture
def platform(start_platform: StartPlatform) -> Platform:
    return start_platform(AIOPS_HOST_METRICS_INTERVAL_S="1")
