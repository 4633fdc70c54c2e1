"""The whole approval flow through a real action worker on the embedded broker: an incident and its RCA -> a
proposed execution with its blast radius and dry run -> two distinct approvals (the requester's own and a second
one from the same person refused) -> the steps against a local Kubernetes API server -> verification against the
SQLite TSDB -> the rollback when the series did not come back (escalated), the incident mitigated when it did;
every step in the hash-chained audit log and every outcome on ``feedback``; on the same worker, a first ranking
naming checkout, then a newer one naming payment: the waiting proposal is superseded (its approval does not carry
over) and payment's proposed. Then SIGKILL mid-step: no step runs twice."""

from __future__ import annotations

import contextlib
import copy
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiops_action.executors.testing import NS, FakeKubernetesApi, seeded_api, serve
from aiops_action.notify.testing import WebhookReceiver, receiving
from aiops_action.runbooks.testing import cause, incident, rca
from aiops_cli.testing import WorkerProcess, worker_env
from aiops_common.audit import verify
from aiops_common.broker import Publisher, free_port
from aiops_common.broker.publisher import Message
from aiops_common.broker.reader import read_to_end
from aiops_common.documents import open_document_store
from aiops_common.schemas import (
    ApprovalDecision,
    ApprovalRecord,
    CauseKind,
    ExecutionRecord,
    ExecutionStatus,
    FeedbackLabel,
    FeedbackRecord,
    IncidentCommand,
    IncidentRecord,
    IncidentStatus,
    MetricBatchBuilder,
    SchemaError,
    StepState,
    execution_id,
)
from aiops_common.topics import Topics, TopicSpec
from aiops_common.topology import Dependency, Service, millis, open_topology_store
from aiops_common.tsdb import open_tsdb

pytestmark = pytest.mark.functional

SCALE_RUNBOOK = """
id: scale-checkout
version: 2
title: Scale out a saturated service
risk: medium
match:
  cause_kinds: [saturation]
parameters:
  service: {type: string, pattern: "[a-z0-9]([-a-z0-9]*[a-z0-9])?", from: cause.service}
  namespace: {type: string, pattern: "[a-z0-9]([-a-z0-9]*[a-z0-9])?", from: labels.namespace, default: default}
  replicas: {type: integer, minimum: 1, maximum: 20, default: 5}
  previous: {type: integer, minimum: 1, maximum: 20, default: 3}
steps:
  - name: scale out
    kind: kubernetes
    action: scale
    arguments: {namespace: {param: namespace}, deployment: {param: service}, replicas: {param: replicas}}
rollback:
  - name: scale back
    kind: kubernetes
    action: scale
    arguments: {namespace: {param: namespace}, deployment: {param: service}, replicas: {param: previous}}
verify:
  series: red.latency_s
  match: {service: {param: service}}
  upper: 0.5
  within_s: 4
"""

SCRIPT_RUNBOOK = """
id: two-scripts
version: 1
title: Two scripts, the second slow
risk: low
match:
  cause_kinds: [errors]
steps:
  - {name: first, kind: script, action: run, arguments: {argv: ["{first}", "{first_log}"]}, timeout_s: 60}
  - {name: second, kind: script, action: run, arguments: {argv: ["{second}", "{second_log}"]}, timeout_s: 120}
verify:
  series: red.error_rate
  upper: 0.1
  within_s: 60
"""


SECRET = "hook-secret"


@dataclass
class Shop:
    """The action worker's world: SQLite stores in ``data_dir``, runbooks, a local Kubernetes API server."""

    broker_url: str
    prefix: str
    tmp: Path
    kube: FakeKubernetesApi
    kube_url: str
    pager: WebhookReceiver
    data_dir: Path = field(init=False)
    runbooks: Path = field(init=False)
    workers: list[WorkerProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.data_dir = self.tmp / "data"
        self.data_dir.mkdir()
        self.runbooks = self.tmp / "runbooks"
        self.runbooks.mkdir()
        self.notify = self.tmp / "notify.yaml"
        self.notify.write_text(
            f"""
channels:
  - {{name: pager, kind: webhook, url: "{self.pager.url}", secret: {SECRET}}}
routes:
  - match: {{min_severity: info}}
    channels: [pager]
escalation:
  - {{after_s: 3600, channels: [pager]}}
group_interval_s: 600
"""
        )

    def url(self, name: str) -> str:
        return f"sqlite:///{self.data_dir / name}.sqlite"

    async def start(self, **settings: object) -> WorkerProcess:
        env = worker_env(
            self.broker_url,
            self.prefix,
            self.data_dir,
            action_runbooks_dir=self.runbooks,
            action_kube="host",
            action_kube_host=self.kube_url,
            action_kube_token="t0ken",
            action_verify_poll_s=0.5,
            action_notify_file=self.notify,
            **settings,
        )
        worker = WorkerProcess.start("action", env, self.tmp / f"action-{len(self.workers)}.log", http_port=free_port())
        self.workers.append(worker)
        await worker.until_ready()
        return worker

    async def publish(self, spec: TopicSpec, value: bytes, key: str) -> None:
        publisher = Publisher(self.broker_url, self.prefix)
        try:
            await publisher.publish([Message(spec, value, key=key.encode())])
        finally:
            await publisher.stop()

    async def open_incident(self, record: IncidentRecord, causes: list[Any]) -> None:
        """The incident as correlation archives it, then its RCA result on ``rca.results``."""
        store = open_document_store(self.url("documents"))
        try:
            await store.upsert("incidents", record.id, record.document())
        finally:
            await store.close()
        result = rca(record, causes)
        await self.publish(Topics.RCA_RESULTS, result.encode(), record.id)

    async def decide(self, execution: str, decision: ApprovalDecision, by: str, comment: str = "") -> None:
        record = ApprovalRecord(
            decision=decision,
            execution_id=execution,
            by=by,
            role="approver",
            via="test",
            at=datetime.now(UTC),
            comment=comment,
        )
        await self.publish(Topics.APPROVALS, record.encode(), execution)

    async def execution(self, exe_id: str) -> ExecutionRecord | None:
        store = open_document_store(self.url("documents"))
        try:
            doc = await store.get("executions", exe_id)
        finally:
            await store.close()
        return None if doc is None else ExecutionRecord.from_document(doc.body)

    async def until(self, worker: WorkerProcess, exe_id: str, *statuses: ExecutionStatus) -> ExecutionRecord:
        async def reached() -> ExecutionRecord | None:
            record = await self.execution(exe_id)
            return record if record is not None and record.status in statuses else None

        return await worker.eventually(reached, 90.0, f"{exe_id} in {', '.join(statuses)}")

    async def read(self, spec: TopicSpec) -> list[bytes]:
        values: list[bytes] = []
        await read_to_end(self.broker_url, spec, self.prefix, values.append)
        return values

    async def audit(self) -> list[dict[str, Any]]:
        store = open_document_store(self.url("documents"))
        try:
            page = await store.query("audit", limit=1000, oldest_first=True)
            report = await verify(store)
            assert report.intact, report.to_json()
            return [d.body for d in page.documents]
        finally:
            await store.close()

    async def write_latency(self, service: str, value: float, seconds: int) -> None:
        """Samples of ``red.latency_s`` for ``service``, one a second from now on (what the stream will see)."""
        builder = MetricBatchBuilder()
        now = millis(datetime.now(UTC))
        for i in range(seconds):
            builder.add("red.latency_s", {"service": service}, now + i * 1000, value)
        store = open_tsdb(self.url("tsdb"))
        try:
            await store.write(builder.build())
        finally:
            await store.close()


async def _topology(url: str) -> None:
    store = open_topology_store(url)
    at = datetime.now(UTC) - timedelta(days=1)
    try:
        await store.upsert_services(
            [
                Service("frontend"),
                Service("mobile-api"),
                Service("checkout", {"replicas": 3, "env": "prod"}),
                Service("payment", {"replicas": 2, "env": "prod"}),
            ]
        )
        calls = [("frontend", "checkout"), ("mobile-api", "checkout"), ("checkout", "payment")]
        await store.upsert_dependencies(Dependency(a, b, frozenset({"file"}), at, at) for a, b in calls)
    finally:
        await store.close()


def _add_deployment(api: FakeKubernetesApi, name: str, uid: str) -> None:
    deployment = copy.deepcopy(api.deployments[(NS, "checkout")])
    deployment["metadata"].update(name=name, uid=uid, labels={"app": name})
    deployment["spec"]["selector"] = {"matchLabels": {"app": name}}
    deployment["spec"]["template"]["metadata"]["labels"] = {"app": name}
    api.deployments[(NS, name)] = deployment


@pytest.fixture
async def shop(broker_url: str, topic_prefix: str, tmp_path: Path) -> AsyncIterator[Shop]:
    api = seeded_api()
    _add_deployment(api, "payment", "0b6d7c3e-3333-4c4c-8a8a-000000000003")
    async with receiving(SECRET) as pager:
        async for url in serve(api.app()):
            shop = Shop(broker_url, topic_prefix, tmp_path, api, url, pager)
            (shop.runbooks / "scale.yaml").write_text(SCALE_RUNBOOK)
            await _topology(shop.url("topology"))
            try:
                yield shop
            finally:
                for worker in shop.workers:
                    worker.stop()


def _scales(api: FakeKubernetesApi, deployment: str) -> list[tuple[int, bool]]:
    """(replicas, dry run) of every scale PATCH the API server took for ``deployment``, in order."""
    return [
        (body["spec"]["replicas"], "dryRun=All" in query)
        for method, path, query, body in api.requests
        if method == "PATCH" and path.endswith(f"/deployments/{deployment}/scale")
    ]


async def test_approval_flow_runs_verifies_and_rolls_back_or_mitigates(shop: Shop) -> None:
    worker = await shop.start()
    labels = {"namespace": NS}
    failing = incident("checkout", labels=labels, signal="red.latency_s", incident_id="inc-checkout")
    healing = incident("payment", labels=labels, signal="red.latency_s", incident_id="inc-payment")
    await shop.open_incident(failing, [cause("checkout", CauseKind.SATURATION)])
    await shop.open_incident(healing, [cause("payment", CauseKind.SATURATION)])
    checkout_exe = execution_id("inc-checkout", "scale-checkout", 1)
    payment_exe = execution_id("inc-payment", "scale-checkout", 1)

    # Proposed, not run: the blast radius from the topology and the dry run are there for the approvers.
    proposed = await shop.until(worker, checkout_exe, ExecutionStatus.PENDING_APPROVAL)
    assert proposed.blast_radius.services == ["checkout", "frontend", "mobile-api"]
    assert (
        proposed.blast_radius.high and proposed.blast_radius.pods == 3 and proposed.blast_radius.environment == "prod"
    )
    assert proposed.required_approvals == 2 and "two distinct approvers" in proposed.policy
    assert proposed.parameters == {"service": "checkout", "namespace": NS, "replicas": 5, "previous": 3}
    assert [s.state for s in proposed.dry_run] == [StepState.OK]
    assert proposed.dry_run[0].summary == f"would scale deployment {NS}/checkout from 3 to 5 replicas"
    assert _scales(shop.kube, "checkout") == [(5, True)]  # the dry run only
    small = await shop.until(worker, payment_exe, ExecutionStatus.PENDING_APPROVAL)
    assert small.blast_radius.services == ["checkout", "payment"] and not small.blast_radius.high
    assert small.required_approvals == 1

    # The verification of checkout will see its latency stay high; payment's comes back.
    await shop.write_latency("checkout", 0.9, 30)
    await shop.write_latency("payment", 0.1, 30)

    await shop.decide(checkout_exe, ApprovalDecision.APPROVE, "action")  # the requester: refused
    await shop.decide(checkout_exe, ApprovalDecision.APPROVE, "alice", "looks right")
    await shop.decide(checkout_exe, ApprovalDecision.APPROVE, "alice", "again")  # the same person: refused

    async def one_approval() -> ExecutionRecord | None:
        record = await shop.execution(checkout_exe)
        return record if record is not None and record.approvers() == ["alice"] else None

    await worker.eventually(one_approval, 60.0, "alice's approval applied")
    refusals = {e["action"] for e in await shop.audit() if e["action"].endswith(".refused")}

    async def both_refused() -> bool:
        return len([e for e in await shop.audit() if e["action"] == "approve.refused"]) == 2

    await worker.eventually(both_refused, 60.0, "the requester's and the repeated approval refused")
    assert (await shop.execution(checkout_exe)).status is ExecutionStatus.PENDING_APPROVAL  # type: ignore[union-attr]
    await shop.decide(checkout_exe, ApprovalDecision.APPROVE, "bob")
    await shop.decide(payment_exe, ApprovalDecision.APPROVE, "carol")

    rolled = await shop.until(worker, checkout_exe, ExecutionStatus.ROLLED_BACK, ExecutionStatus.ROLLBACK_FAILED)
    assert rolled.status is ExecutionStatus.ROLLED_BACK, rolled.error
    assert [s.state for s in rolled.steps] == [StepState.OK] and [s.state for s in rolled.rollback] == [StepState.OK]
    assert rolled.verification is not None and rolled.verification.recovered is False
    assert "0.9" in rolled.verification.detail
    assert _scales(shop.kube, "checkout") == [(5, True), (5, False), (3, False)]
    assert shop.kube.deployments[(NS, "checkout")]["spec"]["replicas"] == 3

    healed = await shop.until(worker, payment_exe, ExecutionStatus.SUCCEEDED, ExecutionStatus.ROLLED_BACK)
    assert healed.status is ExecutionStatus.SUCCEEDED and healed.verification and healed.verification.recovered
    assert shop.kube.deployments[(NS, "payment")]["spec"]["replicas"] == 5

    # Outcomes for learning, the mitigated incident for correlation, and the whole story in the audit chain.
    async def outcomes() -> dict[str, FeedbackLabel] | None:
        found = {
            f.subject_id: f.label
            for f in (FeedbackRecord.decode(v) for v in await shop.read(Topics.FEEDBACK))
            if f.subject_kind == "execution"
        }
        return found if len(found) == 2 else None

    labels_of = await worker.eventually(outcomes, 60.0, "both outcomes on feedback")
    assert labels_of == {checkout_exe: FeedbackLabel.NOT_REMEDIATED, payment_exe: FeedbackLabel.REMEDIATED}
    commands = []
    for value in await shop.read(Topics.CORRELATION_EVENTS):
        with contextlib.suppress(SchemaError):  # the other records correlation takes
            commands.append(IncidentCommand.decode(value))
    assert [(c.incident_id, c.status) for c in commands] == [("inc-payment", IncidentStatus.MITIGATED)]
    trail = [(e["subject_id"], e["action"], e["actor"]) for e in await shop.audit()]
    mine = [(action, actor) for subject, action, actor in trail if subject == checkout_exe]
    for expected in [
        ("execution.requested", "action"),
        ("execution.dry_run", "action"),
        ("execution.approve", "alice"),
        ("execution.approve", "bob"),
        ("execution.started", "action"),
        ("execution.step", "action"),
        ("execution.verification_failed", "action"),
        ("execution.rollback_step", "action"),
        ("execution.rolled_back", "action"),
    ]:
        assert expected in mine, (expected, mine)
    assert refusals <= {"approve.refused"}

    # The people were asked, told the outcome, and the failed fix escalated; the webhooks are signed.
    async def notified() -> list[str] | None:
        kinds = [b["kind"] for b in shop.pager.about(checkout_exe)]
        return kinds if "escalation" in kinds else None

    kinds = await worker.eventually(notified, 60.0, "the escalation of the rolled back execution")
    assert kinds[0] == "approval" and "execution" in kinds, kinds
    escalation = next(b for b in shop.pager.bodies if b["kind"] == "escalation")
    assert escalation["incident_id"] == "inc-checkout" and "rolled back" in escalation["title"]
    assert shop.pager.signed and all(shop.pager.signed)
    assert "escalation" not in [b["kind"] for b in shop.pager.about(payment_exe)]
    states = [ExecutionRecord.decode(v) for v in await shop.read(Topics.ACTIONS)]
    assert [s.status for s in states if s.id == checkout_exe][-1] is ExecutionStatus.ROLLED_BACK

    await _a_newer_ranking_moves_the_proposal(shop, worker)


async def _a_newer_ranking_moves_the_proposal(shop: Shop, worker: WorkerProcess) -> None:
    """RCA's first ranking of an incident names checkout, a newer one (revision 2) payment: the worker supersedes
    the proposal for checkout, still waiting with one of its two approvals, and proposes payment's."""
    first = incident("checkout", labels={"namespace": NS}, signal="red.latency_s", incident_id="inc-moved")
    await shop.open_incident(first, [cause("checkout", CauseKind.SATURATION)])
    old_exe, new_exe = execution_id("inc-moved", "scale-checkout", 1), execution_id("inc-moved", "scale-checkout", 2)
    old = await shop.until(worker, old_exe, ExecutionStatus.PENDING_APPROVAL)
    assert old.cause_service == "checkout" and old.required_approvals == 2
    await shop.decide(old_exe, ApprovalDecision.APPROVE, "alice", "checkout it is")

    async def half_approved() -> ExecutionRecord | None:
        record = await shop.execution(old_exe)
        return record if record is not None and record.approvers() == ["alice"] else None

    await worker.eventually(half_approved, 60.0, "alice's approval of the proposal for checkout applied")
    newer = first.model_copy(update={"revision": 2})
    await shop.open_incident(newer, [cause("payment", CauseKind.SATURATION), cause("checkout", CauseKind.SATURATION)])

    moved = await shop.until(worker, new_exe, ExecutionStatus.PENDING_APPROVAL)
    assert (moved.cause_service, moved.replaces, moved.approvers()) == ("payment", old_exe, [])
    assert moved.parameters["service"] == "payment" and moved.required_approvals == 1
    superseded = await shop.execution(old_exe)
    assert superseded is not None and superseded.status is ExecutionStatus.SUPERSEDED
    assert superseded.superseded_by == new_exe
    assert "superseded by the newer ranking" in superseded.history[-1].note
    assert "1 of 2 approvals given (alice) do not carry over" in superseded.history[-1].note
    trail = [(e["action"], e["details"].get("superseded_by")) for e in await shop.audit() if e["subject_id"] == old_exe]
    assert ("execution.superseded", new_exe) in trail

    async def told() -> list[dict[str, Any]] | None:
        results = [b for b in shop.pager.about(old_exe) if b["kind"] == "execution"]
        asked = [b for b in shop.pager.about(new_exe) if b["kind"] == "approval"]
        return results if results and asked else None

    results = await worker.eventually(told, 60.0, "the supersession and the new approval request announced")
    assert "superseded" in results[0]["title"], results[0]
    assert "escalation" not in [b["kind"] for b in shop.pager.about(old_exe)]


def _script(path: Path, text: str) -> Path:
    path.write_text("#!/bin/sh\n" + text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


async def test_sigkill_mid_step_runs_no_step_twice(shop: Shop) -> None:
    first_log, second_log = shop.tmp / "first.log", shop.tmp / "second.log"
    first = _script(shop.tmp / "first.sh", 'echo ran >> "$1"\n')
    second = _script(shop.tmp / "second.sh", 'echo started >> "$1"\nsleep 300\n')
    text = (
        SCRIPT_RUNBOOK.replace("{first}", str(first))
        .replace("{first_log}", str(first_log))
        .replace("{second}", str(second))
        .replace("{second_log}", str(second_log))
    )
    (shop.runbooks / "scripts.yaml").write_text(text)
    settings: dict[str, object] = {"action_auto_approve_risks": '["low"]', "action_lease_s": 2}
    worker = await shop.start(**settings)
    await shop.open_incident(incident("cart", incident_id="inc-cart"), [cause("cart", CauseKind.ERRORS)])
    exe = execution_id("inc-cart", "two-scripts", 1)

    async def second_started() -> bool:
        return second_log.exists() and second_log.read_text() == "started\n"

    await worker.eventually(second_started, 90.0, "the second step running")
    record = await shop.execution(exe)
    assert record is not None and record.auto_approved and record.status is ExecutionStatus.RUNNING
    worker.kill()

    restarted = await shop.start(**settings)
    ended = await shop.until(restarted, exe, ExecutionStatus.INTERRUPTED)
    assert [s.state for s in ended.steps] == [StepState.OK, StepState.UNKNOWN]
    assert "not run again" in ended.error
    assert first_log.read_text() == "ran\n" and second_log.read_text() == "started\n"
    # nothing runs it again later either: the record is final
    await restarted.eventually(
        lambda: _final(shop, exe), 30.0, "the interrupted execution left alone by the sweeps that follow"
    )
    assert second_log.read_text() == "started\n"


async def _final(shop: Shop, exe: str) -> bool:
    audit = [e for e in await shop.audit() if e["subject_id"] == exe]
    return any(e["action"] == "execution.interrupted" for e in audit)
