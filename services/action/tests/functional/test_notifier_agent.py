"""The notifier's agents in a real Faust worker on the embedded broker, delivering to Slack and webhook receivers
on loopback: a new incident, an approval request with its link to the UI, an execution that rolled back, and the
escalation that follows, signed; an undecodable record and a state delivered twice are not messages.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiops_action.notify.testing import WebhookReceiver, receiving
from aiops_cli.testing import WorkerProcess, worker_env
from aiops_common.broker import Publisher, ensure_topics, free_port
from aiops_common.broker.publisher import Message
from aiops_common.schemas import (
    BlastRadius,
    ExecutionRecord,
    ExecutionStatus,
    IncidentRecord,
    IncidentSeverity,
    StepRecord,
    StepState,
    VerificationRecord,
    execution_id,
)
from aiops_common.schemas.incidents import IncidentMember, JoinReason, MemberKind
from aiops_common.topics import Topics

SECRET = "pager-secret"
UI = "http://ui.example:8080"
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)

pytestmark = pytest.mark.functional


@pytest.fixture
async def receivers() -> AsyncIterator[tuple[WebhookReceiver, WebhookReceiver]]:
    async with receiving() as slack, receiving(SECRET) as pager:
        yield slack, pager


def incident() -> IncidentRecord:
    member = IncidentMember(
        fingerprint="fp-1",
        kind=MemberKind.ALERT,
        name="HighLatency",
        service="payment",
        started_at=T0,
        lead=True,
        reason=JoinReason(rule="seed"),
        joined_at=T0,
    )
    return IncidentRecord(
        id="inc-notify-1",
        revision=1,
        title="payment: HighLatency",
        severity=IncidentSeverity.CRITICAL,
        services=["payment"],
        started_at=T0,
        updated_at=T0,
        members=[member],
    )


def execution(status: ExecutionStatus) -> ExecutionRecord:
    step = StepRecord(
        name="restart payment",
        kind="kubernetes",
        action="rollout_restart",
        arguments={"namespace": "shop", "deployment": "payment"},
    )
    dry = step.model_copy(update={"state": StepState.OK, "summary": "would restart deployment shop/payment (3 pods)"})
    done = status is not ExecutionStatus.PENDING_APPROVAL
    return ExecutionRecord(
        id=execution_id("inc-notify-1", "restart-saturated", 1),
        incident_id="inc-notify-1",
        attempt=1,
        runbook_id="restart-saturated",
        title="Restart a saturated service",
        risk="medium",
        cause_service="payment",
        services=["payment", "checkout"],
        blast_radius=BlastRadius(services=["checkout", "payment"], targets=["payment"], pods=3, environment="shop"),
        requested_by="policy",
        requested_at=T0 + timedelta(minutes=1),
        status=status,
        steps=[step.model_copy(update={"state": StepState.OK, "summary": "restarted"})] if done else [step],
        dry_run=[dry],
        verification=VerificationRecord(
            series="red.latency_p95_s", upper=0.5, within_s=600, for_s=120, recovered=False, detail="p95 stayed 1.2 s"
        )
        if done
        else None,
        error="verification failed: not recovered within 600 s" if done else "",
        updated_at=T0 + timedelta(minutes=2),
    )


def texts(body: dict[str, Any]) -> str:
    """Everything a Slack message says, as one string (header, sections, fields, button url)."""
    return json.dumps(body)


async def test_incident_approval_rollback_and_escalation_reach_slack_and_the_signed_webhook(
    broker_url: str, topic_prefix: str, tmp_path: Path, receivers: tuple[WebhookReceiver, WebhookReceiver]
) -> None:
    slack, pager = receivers
    config = tmp_path / "notify.yaml"
    config.write_text(
        f"""
channels:
  - {{name: ops-slack, kind: slack, url: "{slack.url}"}}
  - {{name: pager, kind: webhook, url: "{pager.url}", secret: {SECRET}}}
routes:
  - match: {{min_severity: minor}}
    channels: [ops-slack]
escalation:
  - {{after_s: 3600, channels: [pager]}}
group_interval_s: 600
"""
    )
    await ensure_topics(broker_url, topic_prefix)
    env = worker_env(
        broker_url,
        topic_prefix,
        tmp_path / "data",
        action_notify_file=config,
        action_ui_url=UI,
        worker_http_host="127.0.0.1",
    )
    worker = WorkerProcess.start("action", env, tmp_path / "action.log", http_port=free_port())
    publisher = Publisher(broker_url, topic_prefix)
    try:
        await worker.until_ready()
        inc = incident()
        await publisher.publish(
            [
                Message(Topics.INCIDENTS, b"not a record", key=b"x"),
                Message(Topics.INCIDENTS, inc.encode(), key=inc.id.encode()),
            ]
        )
        first = await worker.eventually(lambda: _async(slack.bodies[:1]), 60, "the new incident's Slack message")
        assert "[CRITICAL] payment: HighLatency" in first[0]["text"]
        assert f"{UI}/#/incidents/inc-notify-1" in texts(first[0])
        assert first[0]["attachments"][0]["color"] == "#D00000"

        pending = execution(ExecutionStatus.PENDING_APPROVAL)
        rolled_back = execution(ExecutionStatus.ROLLED_BACK)
        key = pending.id.encode()
        # the pending state twice (at-least-once), then the outcome; one partition keeps them in this order
        await publisher.publish([Message(Topics.ACTIONS, r.encode(), key=key) for r in (pending, pending, rolled_back)])

        await worker.eventually(lambda: _async(pager.bodies[:1]), 60, "the escalation on the pager webhook")
        await worker.eventually(lambda: _async(len(slack.bodies) >= 3), 30, "the execution's result on Slack")

        async def delivered() -> str | None:
            # the receiver records a message before it answers; the channel counts it once the answer is in
            async with httpx.AsyncClient() as client:
                text = (await client.get(f"{worker.probe_url}/metrics")).text
            return text if 'aiops_notify_deliveries_total{channel="pager",outcome="sent"} 1.0' in text else None

        metrics = await worker.eventually(delivered, 30, "the escalation counted as sent")
    finally:
        await publisher.stop()
        worker.stop()

    headers = [b["text"] for b in slack.bodies]
    assert len(slack.bodies) == 3, headers  # the repeated pending state asked for approval once
    approval, result = texts(slack.bodies[1]), texts(slack.bodies[2])
    assert "Approval needed: Restart a saturated service for payment: HighLatency" in headers[1]
    assert f"{UI}/#/incidents/inc-notify-1" in approval and "Review and approve" in approval
    assert "contained: 2 services (checkout, payment), 3 pods in shop" in approval
    assert "would restart deployment shop/payment (3 pods)" in approval
    assert "Restart a saturated service rolled back: payment: HighLatency" in headers[2]
    assert "p95 stayed 1.2 s" in result and "not recovered within 600 s" in result

    (escalation,) = pager.bodies
    assert pager.signed == [True]
    assert escalation["kind"] == "escalation"
    assert escalation["incident_id"] == "inc-notify-1"
    assert escalation["title"] == "Escalating: Restart a saturated service rolled back for inc-notify-1"
    assert escalation["fields"]["Outcome"] == "rolled back"
    assert escalation["link"] == f"{UI}/#/incidents/inc-notify-1"

    for kind in ("incident", "approval", "execution", "escalation"):
        assert f'aiops_notify_published_total{{kind="{kind}"}} 1.0' in metrics, kind
    assert 'aiops_agent_dropped_records_total{agent="notifier_incidents",reason="undecodable"} 1.0' in metrics
    assert "notification_not_made" not in worker.log()


async def _async(value: Any) -> Any:
    return value
