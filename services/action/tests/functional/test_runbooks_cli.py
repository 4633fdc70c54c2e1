"""``aiops runbooks validate/list`` on real folders, and the shipped runbooks: all valid, each proposed for the
failure mode it is for and resolved into executor steps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiops_action.commands.runbooks import group
from aiops_action.runbooks import SHIPPED_DIR, RunbookLoadError, load_configured, load_folder, match_runbooks, resolve
from aiops_action.runbooks.testing import cause, incident, rca
from aiops_action.settings import ActionSettings
from aiops_common.schemas import CauseKind, IncidentSeverity, RankedCause
from typer.testing import CliRunner

pytestmark = pytest.mark.functional

runner = CliRunner()

GOOD: dict[str, Any] = {
    "id": "restart-api",
    "version": 4,
    "title": "Restart the api",
    "risk": "low",
    "match": {"cause_kinds": ["crash"], "services": ["api"]},
    "steps": [
        {
            "name": "restart",
            "kind": "kubernetes",
            "action": "rollout_restart",
            "arguments": {"namespace": "prod", "deployment": "api"},
        }
    ],
    "verify": {"series": "red.error_rate", "match": {"service": "api"}, "upper": 0.01, "within_s": 300},
}


def write(folder: Path, name: str, body: object) -> None:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body if isinstance(body, str) else yaml.safe_dump(body), encoding="utf-8")


def test_validate_a_good_folder(tmp_path: Path) -> None:
    write(tmp_path, "restart.yaml", GOOD)
    write(tmp_path, "nested/other.yml", {**GOOD, "id": "restart-api-eu", "match": {"cause_kinds": ["crash"]}})
    write(tmp_path, "README.md", "not a runbook")
    result = runner.invoke(group, ["validate", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "restart-api-eu v4 (low risk, 1 step) nested/other.yml: crash on any service",
        "restart-api v4 (low risk, 1 step) restart.yaml: crash on api",
    ]
    assert "2 runbooks valid" in result.stderr


def test_validate_lists_every_problem_of_every_bad_file(tmp_path: Path) -> None:
    write(tmp_path, "good.yaml", GOOD)
    restart = {"name": "restart", "kind": "kubernetes", "arguments": {"namespace": "prod", "deployment": "api"}}
    bad = {**GOOD, "id": "scale", "steps": [{**restart, "action": "scale"}]}
    write(tmp_path, "rollback.yaml", bad)
    write(tmp_path, "broken.yaml", "id: [\n")
    write(tmp_path, "twin.yaml", {**GOOD, "title": "another with the same id"})
    write(tmp_path, "risky.yaml", {**GOOD, "id": "risky", "risk": "yolo"})
    result = runner.invoke(group, ["validate", str(tmp_path)])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == ["restart-api v4 (low risk, 1 step) good.yaml: crash on api"]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        "error: broken.yaml: line 2: not valid YAML: expected the node content, but found '<stream end>'",
        "error: risky.yaml: risk: Input should be 'low', 'medium' or 'high'",
        "error: rollback.yaml: steps[0].arguments.replicas: required for kubernetes scale",
        "error: twin.yaml: id: 'restart-api' is already the id of good.yaml",
    ]
    assert "1 valid, 4 with problems (4)" in result.stderr


def test_validate_an_empty_or_missing_folder_fails(tmp_path: Path) -> None:
    empty = runner.invoke(group, ["validate", str(tmp_path)])
    assert empty.exit_code == 1 and "no runbooks (*.yaml, *.yml) in" in empty.stderr
    missing = runner.invoke(group, ["validate", str(tmp_path / "nope")])
    assert missing.exit_code == 1 and "nope: not a folder" in missing.stderr


def test_list_the_shipped_runbooks_or_a_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIOPS_ACTION_RUNBOOKS_DIR", raising=False)
    shipped = runner.invoke(group, ["list"])
    assert shipped.exit_code == 0, shipped.output
    lines = shipped.stdout.splitlines()
    assert lines[0].split() == ["ID", "VERSION", "RISK", "MATCHES"]
    assert [line.split()[0] for line in lines[1:]] == [
        "clear-full-disk",
        "restart-service",
        "rollback-bad-deployment",
        "scale-up-saturated",
    ]
    assert "deployment on any service, rule deployment, severity >= warning" in shipped.stdout

    write(tmp_path, "restart.yaml", GOOD)
    monkeypatch.setenv("AIOPS_ACTION_RUNBOOKS_DIR", str(tmp_path))
    configured = runner.invoke(group, ["list", "--json"])
    assert configured.exit_code == 0, configured.output
    listed = json.loads(configured.stdout)
    assert [(r["id"], r["version"], r["risk"], r["file"]) for r in listed] == [
        ("restart-api", 4, "low", "restart.yaml")
    ]
    assert listed[0]["match"]["services"] == ["api"] and listed[0]["steps"][0]["action"] == "rollout_restart"

    write(tmp_path, "bad.yaml", {**GOOD, "id": "bad", "version": "one"})
    by_option = runner.invoke(group, ["list", "--dir", str(tmp_path)])
    assert by_option.exit_code == 1
    assert "restart-api" in by_option.stdout
    assert "error: bad.yaml: version: Input should be a valid integer" in by_option.stderr
    with pytest.raises(RunbookLoadError, match=r"bad\.yaml: version"):
        load_configured(ActionSettings())


def test_the_shipped_runbooks_are_valid() -> None:
    result = runner.invoke(group, ["validate", str(SHIPPED_DIR)])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 4


@pytest.mark.parametrize(
    ("failure", "expected", "step"),
    [
        (
            cause("payment", CauseKind.DEPLOYMENT, rule="deployment", series=["red.error_rate"]),
            "rollback-bad-deployment",
            ("kubernetes", "rollback", {"namespace": "shop", "deployment": "payment"}),
        ),
        (
            cause("payment", CauseKind.CRASH, rule="crash_loop", series=["kube_pod_container_status_restarts_total"]),
            "restart-service",
            ("kubernetes", "rollout_restart", {"namespace": "shop", "deployment": "payment"}),
        ),
        (
            cause("payment", CauseKind.SATURATION, rule="saturation", series=["container_memory_utilisation"]),
            "restart-service",
            ("kubernetes", "rollout_restart", {"namespace": "shop", "deployment": "payment"}),
        ),
        (
            cause("payment", CauseKind.TRAFFIC, series=["red.request_rate"]),
            "scale-up-saturated",
            ("kubernetes", "scale", {"namespace": "shop", "deployment": "payment", "replicas": 6}),
        ),
        (
            cause("payment", CauseKind.SATURATION, rule="saturation", series=["disk_used_percent"]),
            "clear-full-disk",
            (
                "script",
                "run",
                {"argv": ["/usr/local/bin/aiops-clear-disk", "--mountpoint", "/var/lib", "--older-than-days", "7"]},
            ),
        ),
    ],
)
def test_each_shipped_runbook_is_proposed_for_its_failure_mode(
    failure: RankedCause, expected: str, step: tuple[str, str, dict[str, object]]
) -> None:
    runbooks = load_folder(SHIPPED_DIR).checked()
    record = incident(
        "payment",
        labels={"namespace": "shop", "mountpoint": "/var/lib"},
        version="v2.4.1",
        severity=IncidentSeverity.MAJOR,
    )
    found = match_runbooks(runbooks, rca(record, [failure]), record)
    assert found and found[0].runbook.id == expected, [m.runbook.id for m in found]
    resolved = resolve(found[0].runbook, found[0].context(record))
    first = resolved.steps[0]
    assert (first.kind, first.action, dict(first.arguments)) == step
    assert resolved.verify.match["service"] == "payment"
    if expected == "scale-up-saturated":
        assert resolved.rollback[0].arguments["replicas"] == 3


def test_a_minor_incident_is_not_scaled_below_its_floor_and_unknown_causes_get_nothing() -> None:
    runbooks = load_folder(SHIPPED_DIR).checked()
    record = incident("payment", severity=IncidentSeverity.WARNING)
    traffic = rca(record, [cause("payment", CauseKind.TRAFFIC)])
    assert match_runbooks(runbooks, traffic, record) == []
    unknown = rca(record, [cause("payment", CauseKind.UNKNOWN)])
    assert match_runbooks(runbooks, unknown, record) == []
