"""``aiops incidents``: list and show read the document store; bad input is one line and a non-zero exit."""

from __future__ import annotations

import asyncio
import doctest
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiops_common.documents import open_document_store
from aiops_common.schemas import (
    IncidentMember,
    IncidentRecord,
    IncidentSeverity,
    IncidentStatus,
    JoinReason,
    LinkedChange,
    MemberKind,
    incident_id,
)
from aiops_correlation import cli
from aiops_correlation.commands import incidents as incidents_commands
from typer.testing import CliRunner

runner = CliRunner()
NOW = datetime.now(UTC).replace(microsecond=0)


def member(fp: str, service: str, lead: bool, rule: str, text: str) -> IncidentMember:
    return IncidentMember(
        fingerprint=fp,
        kind=MemberKind.ALERT,
        name="HighLatency" if lead else "HighErrorRate",
        service=service,
        severity=IncidentSeverity.CRITICAL,
        started_at=NOW - timedelta(minutes=10),
        lead=lead,
        reason=JoinReason(rule=rule, text=text),
        joined_at=NOW - timedelta(minutes=10),
    )


def incident(seed: str, status: IncidentStatus, service: str, minutes_ago: int) -> IncidentRecord:
    started = NOW - timedelta(minutes=minutes_ago)
    return IncidentRecord(
        id=incident_id(seed),
        revision=3,
        title=f"{service}: HighLatency and 1 more alert",
        status=status,
        severity=IncidentSeverity.CRITICAL,
        services=[service, "checkout"],
        started_at=started,
        updated_at=started,
        members=[
            member(seed, service, True, "seed", "opened the incident"),
            member(seed + "-2", "checkout", False, "topology", "checkout calls payment (1 hop), 40 s later"),
        ],
        changes=[
            LinkedChange(
                id="d-1",
                service=service,
                version="v2.4.1",
                at=started - timedelta(minutes=8),
                before_onset_s=480,
                text=f"{service} v2.4.1 deployed 8 min before onset",
            )
        ],
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    url = f"sqlite:///{tmp_path / 'documents.sqlite'}"

    async def fill() -> None:
        store = open_document_store(url)
        try:
            for record in (
                incident("fp-pay", IncidentStatus.OPEN, "payment", 10),
                incident("fp-db", IncidentStatus.RESOLVED, "db", 600),
            ):
                await store.upsert("incidents", record.id, record.document())
            onset = NOW - timedelta(minutes=10)
            for n, (severity, minutes, message) in enumerate(
                [
                    ("error", 2, "payment gateway timeout after 5000 ms"),
                    ("info", 1, "request served"),
                    ("error", 40, "old"),
                ]
            ):
                line = {"at": (onset + timedelta(minutes=minutes)).isoformat(), "services": ["payment"]}
                await store.upsert("logs", f"log-{n}", {**line, "severity": severity, "message": message})
            await store.upsert(
                "suppressed",
                "fp-flap",
                {
                    "at": NOW.isoformat(),
                    "kind": "alert",
                    "name": "Flappy",
                    "services": ["search"],
                    "key": "alert:Flappy:search",
                    "reason": "1 event in 10 min < X=4 learned from 212 events (flapping)",
                },
            )
        finally:
            await store.close()

    asyncio.run(fill())
    return {"AIOPS_DATA_DIR": str(tmp_path), "AIOPS_DOCUMENTS_URL": url, "AIOPS_BROKER_URL": ""}


@pytest.mark.unit
def test_docstring_examples() -> None:
    result = doctest.testmod(incidents_commands)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.functional
def test_list_filters_and_prints_a_table_or_json(env: dict[str, str]) -> None:
    table = runner.invoke(cli.commands, ["incidents", "list"], env=env)
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0].split()[:3] == ["ID", "STATUS", "SEVERITY"]
    assert incident_id("fp-pay") in lines[1] and incident_id("fp-db") in lines[2]  # newest first

    only_open = runner.invoke(cli.commands, ["incidents", "list", "--status", "open", "--json"], env=env)
    assert only_open.exit_code == 0, only_open.output
    bodies = json.loads(only_open.output)
    assert [b["id"] for b in bodies] == [incident_id("fp-pay")]
    assert [(m["fingerprint"], m["lead"], m["reason"]["rule"]) for m in bodies[0]["members"]] == [
        ("fp-pay", True, "seed"),
        ("fp-pay-2", False, "topology"),
    ]
    recent = runner.invoke(cli.commands, ["incidents", "list", "--since", "1h", "--json"], env=env)
    assert [b["id"] for b in json.loads(recent.output)] == [incident_id("fp-pay")]
    by_service = runner.invoke(cli.commands, ["incidents", "list", "--service", "db", "--json"], env=env)
    assert [b["id"] for b in json.loads(by_service.output)] == [incident_id("fp-db")]


@pytest.mark.functional
def test_show_explains_every_member(env: dict[str, str]) -> None:
    shown = runner.invoke(cli.commands, ["incidents", "show", incident_id("fp-pay")], env=env)
    assert shown.exit_code == 0, shown.output
    assert "payment v2.4.1 deployed 8 min before onset" in shown.output
    assert "why: topology: checkout calls payment (1 hop), 40 s later" in shown.output
    assert " * alert" in shown.output  # the lead is marked
    # Its services' error lines around onset: not the info line, not the error 40 minutes later.
    assert "payment gateway timeout after 5000 ms" in shown.output
    assert "request served" not in shown.output and "  old" not in shown.output
    as_json = runner.invoke(cli.commands, ["incidents", "show", incident_id("fp-pay"), "--json"], env=env)
    assert IncidentRecord.from_document(json.loads(as_json.output)).id == incident_id("fp-pay")


@pytest.mark.functional
def test_held_back_signals_stay_queryable(env: dict[str, str]) -> None:
    shown = runner.invoke(cli.commands, ["incidents", "held"], env=env)
    assert shown.exit_code == 0, shown.output
    assert "Flappy" in shown.output and "learned from 212 events" in shown.output


@pytest.mark.functional
def test_bad_input_is_one_line_and_a_nonzero_exit(env: dict[str, str]) -> None:
    bad_status = runner.invoke(cli.commands, ["incidents", "list", "--status", "closed"], env=env)
    assert bad_status.exit_code == 2 and "no status 'closed'" in bad_status.output
    bad_since = runner.invoke(cli.commands, ["incidents", "list", "--since", "yesterday"], env=env)
    assert bad_since.exit_code == 2 and "not a duration or a time" in bad_since.output
    unknown = runner.invoke(cli.commands, ["incidents", "show", "inc-nope"], env=env)
    assert unknown.exit_code == 1 and "no incident 'inc-nope'" in unknown.output
    not_member = runner.invoke(cli.commands, ["incidents", "split", incident_id("fp-pay"), "fp-other"], env=env)
    assert not_member.exit_code == 1 and "has no member 'fp-other'" in not_member.output
    itself = runner.invoke(cli.commands, ["incidents", "merge", incident_id("fp-pay"), incident_id("fp-pay")], env=env)
    assert itself.exit_code == 2 and "cannot be merged with itself" in itself.output
    # A valid request with no platform to send it to says so.
    no_platform = runner.invoke(cli.commands, ["incidents", "ack", incident_id("fp-pay")], env=env)
    assert no_platform.exit_code == 1 and "no platform is running" in no_platform.output
