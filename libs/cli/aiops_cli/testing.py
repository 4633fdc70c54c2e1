"""A service worker (``python -m aiops_cli worker SERVICE``) run as a real subprocess, for tests and benchmarks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Self

__all__ = ["WorkerProcess", "worker_env"]


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
    """One worker process and its log; ``kill`` is SIGKILL, ``stop`` a clean SIGTERM."""

    proc: subprocess.Popen[bytes]
    log_path: Path

    @classmethod
    def start(cls, service: str, env: Mapping[str, str], log_path: Path) -> Self:
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "aiops_cli", "worker", service],
                env=dict(env),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return cls(proc, log_path)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final commit, no flush."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
