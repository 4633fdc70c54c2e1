"""A service worker (``python -m aiops_cli worker SERVICE``) run as a real subprocess, for tests."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Self

__all__ = ["WorkerProcess"]


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
