"""Stopping a child process: SIGTERM, a grace period, then SIGKILL."""

from __future__ import annotations

import signal
import subprocess

__all__ = ["stop_process"]


def stop_process(proc: subprocess.Popen[bytes] | None, grace_s: float) -> None:
    """Ask ``proc`` to stop with SIGTERM; SIGKILL it when it is still running ``grace_s`` later."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
