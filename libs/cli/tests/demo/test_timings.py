"""The loop's milestones read from the platform's records, the table, and demo.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aiops_cli.demo.faults import ShopState
from aiops_cli.demo.timings import LoopTimings, render_table, write_results

pytestmark = pytest.mark.unit

ONSET = 1_780_000_000.0
AFTER = "2026-05-28T20:27:00Z"  # after ONSET


def _run() -> LoopTimings:
    return LoopTimings.of(ShopState().inject("payment", "latency", 300, ONSET))


def test_each_milestone_once_in_loop_order() -> None:
    run = _run()
    assert run.observe("anomalies", {"service": "payment", "series_name": "red.latency_s"}, ONSET - 5) == []
    assert run.observe("anomalies", {"service": "checkout", "series_name": "red.latency_s"}, ONSET + 12)
    assert run.observe("anomalies", {"service": "payment", "series_name": "red.latency_s"}, ONSET + 13) == []
    # An incident of other services (a false alarm elsewhere) is not the fault's.
    run.observe("incidents", {"id": "inc-other", "services": ["database"], "updated_at": AFTER}, ONSET + 14)
    run.observe("incidents", {"id": "inc-1", "services": ["checkout", "payment"], "updated_at": AFTER}, ONSET + 15)
    run.observe("rca.results", {"incident_id": "inc-other", "causes": [{"service": "payment"}]}, ONSET + 15.5)
    run.observe(
        "rca.results", {"incident_id": "inc-1", "causes": [{"service": "checkout", "kind": "latency"}]}, ONSET + 16
    )
    run.observe(
        "rca.results", {"incident_id": "inc-1", "causes": [{"service": "payment", "kind": "latency"}]}, ONSET + 19
    )
    execution = {"id": "exe-1", "incident_id": "inc-1", "runbook_id": "demo-scale-out-slow", "cause_service": "payment"}
    run.observe("actions", {**execution, "status": "pending_approval"}, ONSET + 20)
    assert not run.closed
    run.observe("actions", {**execution, "status": "running"}, ONSET + 40)
    run.observe("actions", {"id": "exe-2", "incident_id": "inc-1", "status": "failed"}, ONSET + 41)
    run.observe("actions", {**execution, "status": "verifying"}, ONSET + 41)
    run.observe("actions", {**execution, "status": "succeeded"}, ONSET + 90)
    assert run.seconds == {
        "first_anomaly": 12.0,
        "incident": 15.0,
        "rca": 16.0,
        "right_cause_first": 19.0,
        "approval_request": 20.0,
        "executed": 40.0,
        "outcome": 90.0,
    }
    assert (run.incident_id, run.top_cause, run.acted_on, run.status) == ("inc-1", "payment", "payment", "succeeded")
    assert run.closed


def test_a_runbook_run_on_the_wrong_service_does_not_close_the_loop() -> None:
    run = _run()
    run.observe("incidents", {"id": "inc-1", "services": ["payment", "database"], "updated_at": AFTER}, ONSET + 15)
    run.observe("rca.results", {"incident_id": "inc-1", "causes": [{"service": "database"}]}, ONSET + 16)
    run.observe(
        "actions", {"id": "e", "incident_id": "inc-1", "status": "succeeded", "cause_service": "database"}, ONSET + 60
    )
    assert "right_cause_first" not in run.seconds
    assert run.status == "succeeded" and not run.closed


def test_a_runbook_that_does_not_fix_the_fault_does_not_close_the_loop() -> None:
    run = LoopTimings.of(ShopState().inject("payment", "errors", 300, ONSET))
    run.observe("incidents", {"id": "inc-1", "services": ["payment"], "updated_at": AFTER}, ONSET + 15)
    run.observe(
        "rca.results", {"incident_id": "inc-1", "causes": [{"service": "payment", "kind": "traffic"}]}, ONSET + 16
    )
    scaled = {"id": "e", "incident_id": "inc-1", "cause_service": "payment", "runbook_id": "demo-scale-out-slow"}
    run.observe("actions", {**scaled, "status": "succeeded"}, ONSET + 60)
    assert run.status == "succeeded" and not run.closed


def test_an_incident_last_updated_before_onset_is_not_the_fault_s() -> None:
    run = _run()
    run.observe("incidents", {"id": "old", "services": ["payment"], "updated_at": "2020-01-01T00:00:00Z"}, ONSET + 1)
    assert run.incident_id == ""


def test_the_table_and_the_results_file(tmp_path: Path) -> None:
    run = _run()
    run.observe("anomalies", {"service": "payment", "series_name": "red.latency_s"}, ONSET + 12.34)
    table = render_table([run])
    header, row = table.splitlines()
    assert header.split()[:3] == ["fault", "first", "anomaly"]
    assert row.split()[:3] == ["payment:latency", "12.3", "-"]
    path = tmp_path / "results" / "demo.json"
    write_results(path, run, "2 cores")
    content = write_results(path, run)
    assert json.loads(path.read_text()) == content
    assert len(content["runs"]) == 2
    first = content["runs"][0]
    assert first["machine"] == "2 cores" and first["service"] == "payment" and first["kind"] == "latency"
    assert first["seconds"] == {"first_anomaly": 12.34} and first["closed"] is False
    assert first["onset"].startswith("2026-05-28T")


def test_a_proposal_superseded_by_a_newer_ranking_hands_the_loop_to_its_successor() -> None:
    run = LoopTimings("payment", "latency", ONSET, "f1")
    run.observe("incidents", {"id": "inc-1", "services": ["payment", "database"]}, ONSET + 16)
    run.observe("rca.results", {"incident_id": "inc-1", "causes": [{"service": "database", "kind": "x"}]}, ONSET + 17)
    first = {"id": "exe-1", "incident_id": "inc-1", "runbook_id": "demo-scale-out-slow", "cause_service": "database"}
    run.observe("actions", {**first, "status": "pending_approval"}, ONSET + 18)
    run.observe(
        "rca.results", {"incident_id": "inc-1", "causes": [{"service": "payment", "kind": "latency"}]}, ONSET + 33
    )
    second = {**first, "id": "exe-2", "cause_service": "payment"}
    run.observe("actions", {**second, "status": "pending_approval"}, ONSET + 33)
    # The old one's last word, after its successor's first: not followed back.
    run.observe("actions", {**first, "status": "superseded"}, ONSET + 33.5)
    assert (run.execution_id, run.acted_on, run.status) == ("exe-2", "payment", "pending_approval")
    run.observe("actions", {**second, "status": "running"}, ONSET + 34)
    run.observe("actions", {**second, "status": "succeeded"}, ONSET + 60)
    assert run.closed and run.seconds["approval_request"] == 18 and run.seconds["outcome"] == 60
