"""``aiops approve/reject``, ``aiops executions list/show`` and ``aiops runbooks request`` on a real SQLite document
store and the embedded broker: a decision or request that passes the checks is on ``approvals`` as the worker reads
it; one that does not is one line on stderr, an exit code, and nothing published."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiops_action.cli import commands
from aiops_action.runbooks.testing import incident as make_incident
from aiops_common.broker import ensure_topics
from aiops_common.broker.reader import read_to_end
from aiops_common.documents import open_document_store
from aiops_common.schemas import (
    ApprovalDecision,
    ApprovalRecord,
    BlastRadius,
    Decision,
    ExecutionRecord,
    ExecutionStatus,
    IncidentStatus,
    StepRecord,
    StepState,
    Transition,
    VerificationRecord,
    execution_document,
    execution_id,
)
from aiops_common.topics import Topics
from typer.testing import CliRunner, Result

pytestmark = pytest.mark.functional

runner = CliRunner()
NOW = datetime.now(UTC).replace(microsecond=0)


def aiops(*args: str) -> Result:
    result = runner.invoke(commands, list(args))
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def execution(
    n: int,
    status: ExecutionStatus = ExecutionStatus.PENDING_APPROVAL,
    *,
    requested_by: str = "carol",
    approvals: tuple[str, ...] = (),
    expires_in: timedelta = timedelta(hours=1),
    required: int = 1,
) -> ExecutionRecord:
    step = StepRecord(
        name="scale out",
        kind="kubernetes",
        action="scale",
        arguments={"namespace": "shop", "deployment": "payment", "replicas": 6},
    )
    return ExecutionRecord(
        id=execution_id(f"inc-{n}", "scale-up-saturated", 1),
        incident_id=f"inc-{n}",
        attempt=1,
        runbook_id="scale-up-saturated",
        title="Scale out a saturated service",
        risk="medium",
        cause_service="payment",
        cause_kind="saturation",
        services=["payment", "checkout"],
        parameters={"service": "payment", "replicas": 6},
        parameter_sources={"service": "cause.service"},
        blast_radius=BlastRadius(services=["checkout", "payment"], targets=["payment"], pods=3, environment="shop"),
        required_approvals=required,
        policy="medium risk: one person approves",
        requested_by=requested_by,
        requested_at=NOW - timedelta(minutes=n),
        expires_at=NOW + expires_in,
        approvals=[Decision(by=a, decision="approve", at=NOW, via="api", comment="fine") for a in approvals],
        status=status,
        dry_run=[step.model_copy(update={"state": StepState.OK, "summary": "would scale shop/payment from 3 to 6"})],
        steps=[step.model_copy(update={"state": StepState.FAILED, "summary": "403 forbidden\nby the API"})]
        if status is ExecutionStatus.ROLLED_BACK
        else [],
        verification=VerificationRecord(series="red.latency_p95_s", upper=0.5, within_s=600, for_s=120),
        updated_at=NOW,
        history=[Transition(at=NOW, status=status.value, by="policy", note="proposed")],
    )


SUPERSEDED = execution(6, ExecutionStatus.SUPERSEDED, approvals=("alice",), required=2).model_copy(
    update={"rca_id": "rca-6", "rca_revision": 1, "superseded_by": execution_id("inc-6", "scale-up-saturated", 2)}
)
"""A proposal a newer ranking superseded, with the approval it had."""


@pytest.fixture
def platform(broker_url: str, topic_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The store holds incidents, a runbook and executions; commands publish to this test's topics."""
    url = f"sqlite:///{tmp_path / 'documents.sqlite'}"
    for name, value in {
        "AIOPS_DOCUMENTS_URL": url,
        "AIOPS_BROKER_URL": broker_url,
        "AIOPS_TOPIC_PREFIX": topic_prefix,
        "AIOPS_DATA_DIR": str(tmp_path / "data"),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AIOPS_ACTION_RUNBOOKS_DIR", raising=False)

    async def fill() -> None:
        await ensure_topics(broker_url, topic_prefix, [Topics.APPROVALS])
        store = open_document_store(url)
        try:
            for n, status in ((1, IncidentStatus.OPEN), (2, IncidentStatus.RESOLVED)):
                made = make_incident("payment", incident_id=f"inc-{n}").model_copy(update={"status": status})
                await store.upsert("incidents", made.id, made.document())
            for record in (
                execution(1),
                execution(2, ExecutionStatus.RUNNING),
                execution(3, expires_in=timedelta(seconds=-5)),
                execution(4, approvals=("alice",), required=2),
                execution(5, ExecutionStatus.ROLLED_BACK),
                SUPERSEDED,
            ):
                await store.upsert("executions", record.id, execution_document(record))
        finally:
            await store.close()

    asyncio.run(fill())
    return url


def published(broker_url: str, topic_prefix: str) -> list[tuple[ApprovalRecord, bytes]]:
    values: list[bytes] = []
    asyncio.run(read_to_end(broker_url, Topics.APPROVALS, topic_prefix, values.append, 30))
    return [(ApprovalRecord.decode(v), v) for v in values]


def test_approve_and_reject_pass_the_checks_and_reach_the_approvals_topic(
    platform: str, broker_url: str, topic_prefix: str
) -> None:
    first, fourth = execution(1).id, execution(4).id
    ok = aiops("approve", first, "--by", "alice", "--comment", "scaled before, fine")
    assert ok.exit_code == 0, ok.output
    assert f"{first}: approved by alice (1 of 1)" in ok.output
    second = aiops("approve", fourth, "--by", "bob")
    assert second.exit_code == 0, second.output
    assert "(2 of 2)" in second.output
    rejected = aiops("reject", first, "--by", "carol", "--comment", "not now\nmaintenance window")
    assert rejected.exit_code == 0, rejected.output  # a requester may withdraw their own request

    records = [r for r, _ in published(broker_url, topic_prefix)]
    assert [(r.decision, r.execution_id, r.by) for r in records] == [
        (ApprovalDecision.APPROVE, first, "alice"),
        (ApprovalDecision.APPROVE, fourth, "bob"),
        (ApprovalDecision.REJECT, first, "carol"),
    ]
    approved = records[0]
    assert (approved.role, approved.via, approved.comment) == ("admin", "cli", "scaled before, fine")
    assert (approved.incident_id, approved.runbook_id) == ("inc-1", "scale-up-saturated")
    assert abs((approved.at - datetime.now(UTC)).total_seconds()) < 300
    assert records[2].comment == "not now\nmaintenance window"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("approve", "exe-nope", "--by", "alice"), 1, "no execution 'exe-nope'"),
        (("approve", execution(2, ExecutionStatus.RUNNING).id, "--by", "alice"), 1, "is running, not pending_approval"),
        (("reject", execution(5, ExecutionStatus.ROLLED_BACK).id, "--comment", "x"), 1, "is rolled_back, not"),
        (("approve", execution(3).id, "--by", "alice"), 1, "expired at"),
        (("approve", SUPERSEDED.id, "--by", "bob"), 1, "is superseded, not pending_approval: nothing to decide"),
        (("approve", execution(1).id, "--by", "carol"), 1, "carol requested execution"),
        (("approve", execution(4).id, "--by", "alice"), 1, "alice already approved"),
        (("reject", execution(1).id, "--comment", "  ", "--by", "alice"), 2, "--comment must say why"),
        (("approve", execution(1).id, "--by", " "), 2, "--by must name someone"),
    ],
)
def test_a_decision_the_policy_would_refuse_is_one_line_and_nothing_is_published(
    platform: str, broker_url: str, topic_prefix: str, args: tuple[str, ...], code: int, message: str
) -> None:
    result = aiops(*args)
    assert result.exit_code == code, result.output
    assert message in result.output
    assert result.output.startswith("error: ") and result.output.count("\n") == 1
    assert published(broker_url, topic_prefix) == []


def test_reject_needs_a_comment(platform: str) -> None:
    result = aiops("reject", execution(1).id)
    assert result.exit_code == 2
    assert "--comment" in result.output


def test_without_a_running_platform_nothing_is_sent(platform: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIOPS_BROKER_URL")
    result = aiops("approve", execution(1).id, "--by", "alice")
    assert result.exit_code == 1
    assert "error: nothing was sent: no platform is running" in result.output


def test_executions_list_and_show(platform: str) -> None:
    listed = aiops("executions", "list")
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert lines[0].split() == ["ID", "STATUS", "RUNBOOK", "INCIDENT", "APPROVALS", "REQUESTED"]
    assert [line.split()[0] for line in lines[1:]] == [execution(n).id for n in (1, 2, 3, 4, 5, 6)]  # newest first
    assert "1/2" in lines[4]

    only = aiops("executions", "list", "--incident", "inc-2", "--json")
    assert [b["id"] for b in json.loads(only.output)] == [execution(2).id]
    pending = aiops("executions", "list", "--status", "pending_approval")
    assert len(pending.output.splitlines()) == 4
    assert aiops("executions", "list", "--incident", "inc-9").output == "no executions for inc-9\n"
    bad = aiops("executions", "list", "--status", "done")
    assert bad.exit_code == 2 and "no status 'done'" in bad.output

    shown = aiops("executions", "show", execution(5).id)
    assert shown.exit_code == 0, shown.output
    text = shown.output
    for expected in (
        "runbook    scale-up-saturated v1 (Scale out a saturated service)",
        "status     rolled_back",
        "blast      contained: 2 services (checkout, payment), 3 pods in shop",
        "parameters replicas=6, service='payment' (from cause.service)",
        "approvals  0 of 1 (medium risk: one person approves)",
        "[ok     ] scale out (kubernetes scale): would scale shop/payment from 3 to 6",
        "[failed ] scale out (kubernetes scale): 403 forbidden by the API",
        "verify     red.latency_p95_s in [-inf, 0.5] for 120s within 600s: pending",
        "rolled_back       policy: proposed",
    ):
        assert expected in text, expected
    moved = aiops("executions", "show", SUPERSEDED.id).output
    assert "ranking    rca-6 (incident revision 1)" in moved
    assert (
        f"superseded by {SUPERSEDED.superseded_by} (a newer ranking); approvals given here do not carry over" in moved
    )
    as_json = json.loads(aiops("executions", "show", execution(4).id, "--json").output)
    assert ExecutionRecord.from_document(as_json) == execution(4, approvals=("alice",), required=2)
    missing = aiops("executions", "show", "exe-nope")
    assert missing.exit_code == 1 and "no execution 'exe-nope'" in missing.output


def test_runbooks_request_checks_the_incident_runbook_and_parameters(
    platform: str, broker_url: str, topic_prefix: str
) -> None:
    refused = [
        (("scale-up-saturated", "--incident", "inc-9"), 1, "no incident 'inc-9'"),
        (("scale-up-saturated", "--incident", "inc-2"), 1, "incident inc-2 is resolved"),
        (("scale-up-saturated", "--incident", "inc-1"), 1, "already waits for approval for inc-1"),
        (("restart-service", "--incident", "inc-1", "--param", "replicas"), 2, "is not NAME=VALUE"),
    ]
    for args, code, message in refused:
        result = aiops("runbooks", "request", *args)
        assert result.exit_code == code, (args, result.output)
        assert message in result.output, (args, result.output)
    assert published(broker_url, topic_prefix) == []

    async def resolve_the_pending_one() -> None:
        store = open_document_store(platform)
        try:
            done = execution(1, ExecutionStatus.REJECTED)
            await store.upsert("executions", done.id, execution_document(done))
        finally:
            await store.close()

    asyncio.run(resolve_the_pending_one())
    for args, message in [
        (("no-such-runbook",), "no runbook 'no-such-runbook'"),
        (("scale-up-saturated", "--param", "replicas=100"), "--param replicas: 100 is above the maximum 50"),
        (("scale-up-saturated", "--param", "service=x; rm -rf /"), "--param service: 'x; rm -rf /' does not match"),
        (("scale-up-saturated", "--param", "colour=red"), "--param colour: scale-up-saturated has no such parameter"),
    ]:
        result = aiops("runbooks", "request", *args, "--incident", "inc-1")
        assert result.exit_code == (1 if "no runbook" in message else 2), (args, result.output)
        assert message in result.output, (args, result.output)
    assert published(broker_url, topic_prefix) == []

    ok = aiops(
        "runbooks", "request", "scale-up-saturated", "--incident", "inc-1", "--param", "replicas=8",
        "--param", "namespace=shop", "--note", "saturated since 10:40", "--by", "dave",
    )  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert "requested scale-up-saturated for inc-1 by dave" in ok.output
    ((record, _),) = published(broker_url, topic_prefix)
    assert record.decision is ApprovalDecision.REQUEST
    assert (record.incident_id, record.runbook_id, record.execution_id) == ("inc-1", "scale-up-saturated", "")
    assert record.parameters == {"replicas": 8, "namespace": "shop"}
    assert isinstance(record.parameters["replicas"], int)
    assert (record.by, record.via, record.comment) == ("dave", "cli", "saturated since 10:40")
