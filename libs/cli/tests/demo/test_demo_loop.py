"""The scripted demo end to end with its defaults: platform, shop, fault, incident with the right cause first,
approval, recovery, and the timings it writes.

About 2.5 minutes on an idle 2-core machine (platform start, 30 minutes of history, 60 s of live traffic, the loop, a
30 s verification), more under load: marked ``slow``, out of the default run (``pytest -m slow``). The default run
has the loop end to end on a quicker demo (``--backfill 10m --warm-windows 2 --verify-for 0s``), shared with the
bad-actor tests: ``libs/cli/tests/bad_actors/test_whole_loop.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from aiops_common.broker import free_port
from aiops_common.testing.eventually import scaled

pytestmark = [pytest.mark.functional, pytest.mark.slow]


def test_a_payment_latency_fault_closes_the_loop(tmp_path: Path) -> None:
    results = tmp_path / "demo.json"
    env = {
        **os.environ,
        "AIOPS_DATA_DIR": str(tmp_path / "data"),
        "AIOPS_INGEST_HTTP_PORT": str(free_port()),
        "AIOPS_INGEST_GRPC_PORT": str(free_port()),
        "AIOPS_GATEWAY_PORT": str(free_port()),
        "AIOPS_DEMO_CONTROL_PORT": str(free_port()),
        "AIOPS_LOG_LEVEL": "WARNING",
    }
    env.pop("AIOPS_BROKER_URL", None)
    args = ["demo", "run", "--fault", "payment:latency", "--approve", "--timeout", str(scaled(240))]
    done = subprocess.run(
        [sys.executable, "-m", "aiops_cli", *args, "--results", str(results)],
        env=env,
        capture_output=True,
        text=True,
        timeout=scaled(600),
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    (run,) = json.loads(results.read_text())["runs"]
    assert run["closed"] is True
    assert run["top_cause"] == "payment" and run["acted_on"] == "payment"
    assert run["runbook"] == "demo-scale-out-slow" and run["status"] == "succeeded"
    seconds = run["seconds"]
    assert seconds["first_anomaly"] <= seconds["incident"] <= seconds["right_cause_first"]
    assert seconds["approval_request"] <= seconds["executed"] <= seconds["outcome"]
    assert run["notifications"].get("slack", 0) > 0 and run["notifications"].get("webhook", 0) > 0
    assert "[webhook]" in done.stdout and "signature valid" in done.stdout
    # Everything stopped: no platform is left running from the demo's folder.
    assert not (tmp_path / "data" / "state.json").exists()
