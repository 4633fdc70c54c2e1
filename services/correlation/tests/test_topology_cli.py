"""``aiops topology load/show/changes`` against a real SQLite topology store."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiops_common.topology import Change, Dependency, open_topology_store
from aiops_correlation import cli
from typer.testing import CliRunner

pytestmark = pytest.mark.functional

runner = CliRunner()
EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "topology.json"
NOW = datetime.now(UTC).replace(microsecond=0)


def env(tmp_path: Path) -> dict[str, str]:
    return {"AIOPS_DATA_DIR": str(tmp_path), "AIOPS_TOPOLOGY_URL": f"sqlite:///{tmp_path / 'topology.sqlite'}"}


def aiops(tmp_path: Path, *args: str) -> tuple[int, str]:
    done = runner.invoke(cli.commands, ["topology", *args], env=env(tmp_path))
    return done.exit_code, done.output


async def seed(tmp_path: Path) -> None:
    """What the agents would have recorded: a traced edge beside a declared one, and two changes."""
    store = open_topology_store(env(tmp_path)["AIOPS_TOPOLOGY_URL"])
    try:
        seen = NOW - timedelta(minutes=5)
        await store.upsert_dependencies(
            [
                Dependency("checkout", "payment", frozenset({"traces"}), seen, NOW),
                Dependency("payment", "fraud", frozenset({"traces"}), seen, NOW),
            ]
        )
        await store.add_changes(
            [
                Change("d-1", "payment", NOW - timedelta(minutes=8), attributes={"version": "v2.4.1"}),
                Change("c-1", "postgres", NOW - timedelta(hours=3), "config", "max_connections 100 -> 200"),
            ]
        )
    finally:
        await store.close()


def test_load_prints_what_it_loaded_and_show_lists_it(tmp_path: Path) -> None:
    code, out = aiops(tmp_path, "load", str(EXAMPLE))
    assert code == 0, out
    assert out.splitlines()[0] == f"loaded 6 services and 6 dependencies from {EXAMPLE}"
    assert "checkout -> payment" in out

    asyncio.run(seed(tmp_path))
    code, out = aiops(tmp_path, "show", "--json")
    assert code == 0, out
    shown = json.loads(out)
    names = [s["name"] for s in shown["services"]]
    assert names == sorted(names) and "fraud" in names and len(names) == 7
    assert {"name": "payment", "attributes": {"team": "payments", "tier": "app", "zone": "eu-west-1b"}} in (
        shown["services"]
    )
    edges = {(d["from"], d["to"]): d for d in shown["dependencies"]}
    assert len(edges) == 7
    assert edges["checkout", "payment"]["sources"] == ["file", "traces"]
    assert edges["frontend", "catalog"]["sources"] == ["file"]
    assert edges["payment", "fraud"]["first_seen"] < edges["payment", "fraud"]["last_seen"]

    code, out = aiops(tmp_path, "show")
    assert code == 0, out
    assert "services (7):" in out and "dependencies (7):" in out
    assert any(line.split()[:4] == ["checkout", "->", "payment", "file,traces"] for line in out.splitlines())


def test_a_bad_file_is_one_line_exit_2_and_changes_nothing(tmp_path: Path) -> None:
    assert aiops(tmp_path, "load", str(EXAMPLE))[0] == 0
    bad = tmp_path / "bad.json"
    payload = {"services": [{"name": "api"}, {"tier": "x"}], "dependencies": [{"from": "api", "to": "db"}]}
    bad.write_text(json.dumps(payload))
    not_json = tmp_path / "not.json"
    not_json.write_text("{services: [")
    for path, says in [
        (bad, "services[1].name: missing"),
        (not_json, "is not JSON"),
        (tmp_path / "missing.json", "cannot read"),
    ]:
        # --replace too: a bad file must not clear the store before it is refused.
        code, out = aiops(tmp_path, "load", str(path), "--replace")
        assert code == 2, out
        assert out.startswith("error: ") and says in out, out
        assert len(out.strip().splitlines()) == 1 and "Traceback" not in out
    assert "'db' is not a service in this file" in aiops(tmp_path, "load", str(bad))[1]
    assert len(json.loads(aiops(tmp_path, "show", "--json")[1])["services"]) == 6


def test_replace_forgets_what_the_store_held(tmp_path: Path) -> None:
    asyncio.run(seed(tmp_path))
    small = tmp_path / "small.json"
    small.write_text(
        json.dumps({"services": [{"name": "a"}, {"name": "b"}], "dependencies": [{"from": "a", "to": "b"}]})
    )
    code, out = aiops(tmp_path, "load", str(small), "--replace")
    assert code == 0, out
    assert out.startswith("replaced the store's topology with 2 services and 1 dependency")
    shown = json.loads(aiops(tmp_path, "show", "--json")[1])
    assert [s["name"] for s in shown["services"]] == ["a", "b"]
    assert [(d["from"], d["to"], d["sources"]) for d in shown["dependencies"]] == [("a", "b", ["file"])]


def test_changes_since_and_by_service(tmp_path: Path) -> None:
    asyncio.run(seed(tmp_path))
    code, out = aiops(tmp_path, "changes", "--json")
    assert code == 0, out
    assert [(c["id"], c["service"], c["attributes"]) for c in json.loads(out)] == [
        ("d-1", "payment", {"version": "v2.4.1"})
    ]
    code, out = aiops(tmp_path, "changes", "--since", "1d")
    assert code == 0, out
    lines = out.splitlines()
    assert len(lines) == 2 and "postgres  config  max_connections 100 -> 200" in lines[0] and "v2.4.1" in lines[1]
    assert [
        c["id"] for c in json.loads(aiops(tmp_path, "changes", "--since", "1d", "--service", "postgres", "--json")[1])
    ] == ["c-1"]
    assert aiops(tmp_path, "changes", "--service", "postgres")[1].startswith("no changes since")
    code, out = aiops(tmp_path, "changes", "--since", "yesterday")
    assert code == 2 and "not a duration or a time" in out


def test_an_unreachable_store_is_one_line(tmp_path: Path) -> None:
    done = runner.invoke(
        cli.commands, ["topology", "show"], env={**env(tmp_path), "AIOPS_TOPOLOGY_URL": "bolt://127.0.0.1:1"}
    )
    assert done.exit_code == 1
    assert done.output.startswith("error: topology store bolt://127.0.0.1:1: ServiceUnavailable")
    assert "Traceback" not in done.output


def test_the_aiops_command_loads_the_example_file(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "aiops_cli", "topology", "load", str(EXAMPLE)],
        env={**os.environ, **env(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("loaded 6 services and 6 dependencies")


def test_a_running_worker_s_store_sees_a_file_loaded_beside_it(tmp_path: Path) -> None:
    """``aiops up`` holds the SQLite store open while ``aiops topology load`` writes the file: the worker's
    store reads the loaded services, and the edges it records from traces keep the file's source."""
    store = open_topology_store(env(tmp_path)["AIOPS_TOPOLOGY_URL"])
    try:
        assert asyncio.run(store.services()) == []
        code, out = aiops(tmp_path, "load", str(EXAMPLE))  # another connection writes the file
        assert code == 0, out
        traced = Dependency("checkout", "payment", frozenset({"traces"}), NOW, NOW)
        asyncio.run(store.upsert_dependencies([traced]))
        assert len(asyncio.run(store.services())) == 6
        payment = asyncio.run(store.service("payment"))
        assert payment is not None and payment.tier == "app"
    finally:
        asyncio.run(store.close())
    shown = json.loads(aiops(tmp_path, "show", "--json")[1])
    edges = {(d["from"], d["to"]): d["sources"] for d in shown["dependencies"]}
    assert edges["checkout", "payment"] == ["file", "traces"]
