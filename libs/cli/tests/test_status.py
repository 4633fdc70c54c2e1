"""``aiops status`` from any folder: the running platform's liveness, consumer lag and drops, read from its probes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from aiops_cli.state import RunState
from aiops_cli.status import find_data_dir
from aiops_common.settings import CommonSettings
from aiops_common.topics import Topics
from prometheus_client.parser import text_string_to_metric_families

from .conftest import StartPlatform


@pytest.mark.unit
def test_the_data_folder_is_found_upward_unless_aiops_data_dir_names_it(tmp_path: Path) -> None:
    data = tmp_path / ".aiops"
    RunState("kafka://127.0.0.1:9", True, "", ["stream"], None, None, os.getpid()).write(data)
    below = tmp_path / "a" / "b"
    below.mkdir(parents=True)
    assert find_data_dir(CommonSettings(), cwd=below) == data
    assert find_data_dir(CommonSettings(), cwd=tmp_path) == data
    named = tmp_path / "elsewhere"
    assert find_data_dir(CommonSettings(data_dir=named), cwd=below) == named
    # Nothing running anywhere above: the usual relative default, as every other command has it.
    assert find_data_dir(CommonSettings(), cwd=tmp_path.parent) == Path(".aiops")


def _lag_of_every_partition(probe_url: str, topic: str, partitions: int) -> bool:
    try:
        text = httpx.get(probe_url + "/metrics", timeout=2.0).text
    except httpx.HTTPError:
        return False
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
    lagged = {s.labels["partition"] for s in samples if s.name == "aiops_consumer_lag" and s.labels["topic"] == topic}
    return len(lagged) == partitions


@pytest.mark.functional
def test_status_from_a_subfolder_finds_aiops_up_and_shows_liveness_and_lag(
    start_platform: StartPlatform, tmp_path: Path
) -> None:
    data = tmp_path / "project" / ".aiops"
    platform = start_platform("--no-host-metrics", AIOPS_DATA_DIR=str(data))
    state = json.loads((data / "state.json").read_text())
    probe_url = state["probe_url"]
    assert probe_url.startswith("http://127.0.0.1:")
    assert httpx.get(probe_url + "/health", timeout=5).json()["status"] == "ok"

    # Lag figures come once the consumer has fetched from every partition it was assigned.
    partitions = Topics.METRICS_RAW.partitions
    deadline = time.monotonic() + 120
    while not _lag_of_every_partition(probe_url, "metrics.raw", partitions):
        assert platform.proc.poll() is None, platform.log.read_text()[-3000:]
        if time.monotonic() > deadline:
            pytest.fail("no lag of every metrics.raw partition in /metrics: " + httpx.get(probe_url + "/metrics").text)
        time.sleep(0.5)

    below = tmp_path / "project" / "src" / "deep"
    below.mkdir(parents=True)
    env = {k: v for k, v in platform.env.items() if k != "AIOPS_DATA_DIR"}
    result = subprocess.run(
        [sys.executable, "-m", "aiops_cli", "status"], env=env, cwd=below, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for service in state["services"]:
        line = next(line for line in lines if line.split()[:1] == [service] and line.split()[1] in ("live", "DOWN"))
        assert line.split()[1] == "live" and "200 ready" in line, result.stdout
    lag = next(line for line in lines if line.startswith("metrics.raw ") and len(line.split()) == 4)
    assert int(lag.split()[1]) == partitions, result.stdout  # one lag figure per partition
    assert any(line.split()[:2] == ["window_aggregator", "0"] for line in lines), result.stdout  # records in
    assert "drops" in result.stdout
