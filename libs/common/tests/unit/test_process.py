"""Suspending a child process: every thread is stopped when ``suspended`` yields, and runs again after it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiops_common.process import stop_process, suspended

pytestmark = pytest.mark.unit

# Eight threads that each count in a file of their own, as fast as they can.
BUSY = """
import sys, threading
def count(n):
    i = 0
    while True:
        i += 1
        if i % 1000 == 0:
            open(f"{sys.argv[1]}/{n}", "w").write(str(i))
for n in range(8):
    threading.Thread(target=count, args=(n,), daemon=True).start()
threading.Event().wait()
"""


def _counts(folder: Path) -> dict[str, str]:
    return {f.name: f.read_text() for f in folder.iterdir()}


def test_no_thread_runs_while_suspended_and_all_run_after(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", BUSY, str(tmp_path)])
    try:
        deadline = time.monotonic() + 30
        while len(list(tmp_path.iterdir())) < 8:
            assert time.monotonic() < deadline, "the child's threads did not start"
            time.sleep(0.01)
        with suspended(proc.pid):
            before = _counts(tmp_path)
            time.sleep(0.2)
            assert _counts(tmp_path) == before, "a thread went on counting after suspended() returned"
        deadline = time.monotonic() + 30
        while any(_counts(tmp_path)[n] == before[n] for n in before):
            assert time.monotonic() < deadline, "threads did not resume after suspended() ended"
            time.sleep(0.01)
    finally:
        stop_process(proc, 5)
