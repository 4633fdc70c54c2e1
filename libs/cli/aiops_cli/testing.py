"""A service worker (``python -m aiops_cli worker SERVICE``) run as a real subprocess, for tests and benchmarks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Self, TypeVar

import httpx
from aiops_common.broker import free_port
from aiops_common.process import stop_process
from aiops_common.testing.eventually import EventuallyTimeoutError, eventually

__all__ = ["STARTUP_S", "PlatformProcess", "WorkerExitedError", "WorkerProcess", "worker_env"]

V = TypeVar("V")

STARTUP_S = 120.0
"""Budget for a worker to take its partitions (imports, group join, a killed member's session to expire)."""


class WorkerExitedError(RuntimeError):
    """The worker a test waits on has exited; not an ``AssertionError``, so ``eventually()`` stops at once."""


def worker_env(broker_url: str, topic_prefix: str, data_dir: Path, **settings: object) -> dict[str, str]:
    """This process's environment plus what points a worker at a test's broker, topics and folder.

    ``settings`` become ``AIOPS_<NAME>`` variables (``detect_min_history=60`` is
    ``AIOPS_DETECT_MIN_HISTORY=60``); logs are console lines at INFO, which tests read.
    """
    env = dict(os.environ)
    env.update(
        AIOPS_BROKER_URL=broker_url,
        AIOPS_TOPIC_PREFIX=topic_prefix,
        AIOPS_DATA_DIR=str(data_dir),
        AIOPS_LOG_FORMAT="console",
        AIOPS_LOG_LEVEL="INFO",
    )
    env.update({f"AIOPS_{name.upper()}": str(value) for name, value in settings.items()})
    return env


@dataclass
class WorkerProcess:
    """One worker process and its log; ``kill`` is SIGKILL, ``stop`` a clean SIGTERM.

    Started with ``http_port``, it serves its probes there (``AIOPS_WORKER_HTTP_PORT``)
    and :meth:`until_ready` waits for ``/ready``: the worker holds its partitions, so a
    budget that starts after it measures the work, not the start-up.
    """

    proc: subprocess.Popen[bytes]
    log_path: Path
    probe_url: str = ""

    @classmethod
    def start(cls, service: str, env: Mapping[str, str], log_path: Path, http_port: int | None = None) -> Self:
        environment = dict(env)
        if http_port is not None:
            environment["AIOPS_WORKER_HTTP_PORT"] = str(http_port)
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "aiops_cli", "worker", service],
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return cls(proc, log_path, f"http://127.0.0.1:{http_port}" if http_port is not None else "")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise WorkerExitedError(f"worker exited with {self.proc.returncode}\n{self.log()[-6000:]}")

    async def until_ready(self, timeout_s: float = STARTUP_S) -> None:
        """Wait until the worker's ``/ready`` answers 200 (it was started with ``http_port``)."""
        if not self.probe_url:
            raise ValueError("the worker was started without http_port: it has no /ready to wait for")

        async def ready() -> bool:
            try:
                async with httpx.AsyncClient(timeout=5.0) as client:
                    return (await client.get(self.probe_url + "/ready")).status_code == 200
            except httpx.TransportError:
                return False  # the probe server is not listening yet

        await self.eventually(ready, timeout_s, "the worker's /ready (partitions assigned)")

    async def eventually(self, check: Callable[[], Awaitable[V | None]], timeout_s: float, what: str) -> V:
        """:func:`eventually` that stops at once if the worker exits, and shows its log on time-out."""

        async def alive_check() -> V | None:
            self.check_alive()
            return await check()

        try:
            found: V = await eventually(alive_check, timeout=timeout_s, what=what)
        except EventuallyTimeoutError as exc:
            raise EventuallyTimeoutError(f"{exc}\n{self.log()[-6000:]}") from None
        return found

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final commit, no flush."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        stop_process(self.proc, 20)


@dataclass
class PlatformProcess:
    """``aiops up`` as a real subprocess on free loopback ports, with its own data folder and log.

    ``env`` is what it runs with (``AIOPS_DATA_DIR``, the ports); ``http_url`` its ingestion, ``gateway_url`` its
    gateway. :meth:`until_ready` waits for ingestion's, the worker's and the gateway's ``/ready``.
    """

    proc: subprocess.Popen[bytes]
    env: dict[str, str]
    data_dir: Path
    http_url: str
    gateway_url: str
    log: Path

    @classmethod
    def start(cls, data_dir: Path, log: Path, *args: str, **extra_env: str) -> Self:
        """Start it (``args`` after ``aiops up``, ``extra_env`` over this process's environment, embedded broker)."""
        http_port, gateway_port = free_port(), free_port()
        env = {
            **os.environ,
            "AIOPS_DATA_DIR": str(data_dir),
            "AIOPS_INGEST_HTTP_PORT": str(http_port),
            "AIOPS_INGEST_GRPC_PORT": str(free_port()),
            "AIOPS_GATEWAY_PORT": str(gateway_port),
            "AIOPS_LOG_LEVEL": "WARNING",
            **extra_env,
        }
        env.pop("AIOPS_BROKER_URL", None)
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "aiops_cli", "up", *args], env=env, stdout=out, stderr=out)
        folder = Path(env["AIOPS_DATA_DIR"])  # extra_env may name another
        return cls(proc, env, folder, f"http://127.0.0.1:{http_port}", f"http://127.0.0.1:{gateway_port}", log)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    async def _answers_200(self, url: str) -> bool:
        if self.proc.poll() is not None:  # not an AssertionError: the wait ends at once
            raise WorkerExitedError(f"aiops up exited with {self.proc.returncode}: {self.tail()}")
        try:
            async with httpx.AsyncClient(timeout=5.0) as client:
                return (await client.get(url)).status_code == 200
        except httpx.HTTPError:
            return False  # not listening yet

    async def until_ready(self, timeout_s: float = STARTUP_S, gateway: bool = False) -> None:
        """Ingestion answers and the workers hold their partitions (and the gateway, with ``gateway``): a test's
        budgets then measure the work, not the start."""

        async def ready() -> bool:
            if not await self._answers_200(self.http_url + "/ready"):
                return False
            state = json.loads((self.data_dir / "state.json").read_text())  # written before ingestion starts
            if not await self._answers_200(state["probe_url"] + "/ready"):
                return False
            return not gateway or await self._answers_200(self.gateway_url + "/ready")

        what = "aiops up's ingestion, worker" + (" and gateway" if gateway else "") + " /ready"
        try:
            await eventually(ready, timeout=timeout_s, what=what)
        except EventuallyTimeoutError as exc:
            raise EventuallyTimeoutError(f"{exc}\n{self.tail()}") from None

    def stop(self) -> None:
        """SIGTERM: servers, agents and the embedded broker stop (a SIGKILL would orphan the broker)."""
        stop_process(self.proc, 30)
