"""Child processes: stopping one (SIGTERM, a grace period, then SIGKILL), and suspending one for a while."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["stop_process", "suspended"]


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


def _running_threads(pid: int) -> list[str]:
    """Ids of the process's threads that are not stopped (Linux ``/proc``)."""
    running = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except FileNotFoundError:
            continue  # the thread ended
        state = stat[stat.rindex(")") + 2]
        if state not in "tTZX":
            running.append(task.name)
    return running


@contextmanager
def suspended(pid: int, timeout_s: float = 10.0) -> Iterator[None]:
    """SIGSTOP ``pid`` and wait until every one of its threads has stopped; SIGCONT on the way out.

    ``kill`` returns once the signal is queued, and only the thread picked to take it
    starts the group stop: until that thread is scheduled, the others (a broker's
    network threads, say) go on answering. On a loaded machine that is long enough
    for a request sent "after" the stop to be acknowledged.
    """
    os.kill(pid, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + timeout_s
        while running := _running_threads(pid):
            if time.monotonic() > deadline:
                raise TimeoutError(f"threads {running} of process {pid} still run {timeout_s} s after SIGSTOP")
            time.sleep(0.005)
        yield
    finally:
        os.kill(pid, signal.SIGCONT)
