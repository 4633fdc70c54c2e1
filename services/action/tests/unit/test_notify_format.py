"""What notifications say: the deterministic summary, Slack's Block Kit with escaping, signed webhook bodies."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from aiops_action.notify.messages import (
    EventKind,
    approval_request,
    execution_result,
    incident_link,
    new_incident,
    severity_changed,
)
from aiops_action.notify.slack import SEVERITY_COLOURS, escape_mrkdwn, slack_payload
from aiops_action.notify.summary import incident_summary
from aiops_action.notify.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, verify_signature, webhook_body
from aiops_common.schemas.incidents import (
    IncidentMember,
    IncidentRecord,
    IncidentSeverity,
    JoinReason,
    LinkedChange,
    MemberKind,
)
from aiops_common.schemas.rca import CauseKind, Evidence, EvidenceKind, RankedCause, RcaResult, RcaStatus

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 1, 10, 40, tzinfo=UTC)
EVIL = "<!channel> <https://evil|click>"


def incident(service: str = "payment", severity: IncidentSeverity = IncidentSeverity.MAJOR) -> IncidentRecord:
    reason = JoinReason(rule="seed")
    return IncidentRecord(
        id="inc-1",
        revision=3,
        title=f"{service}: HighLatency",
        severity=severity,
        services=[service, "checkout"],
        started_at=T0,
        updated_at=T0,
        members=[
            IncidentMember(
                fingerprint="a1",
                kind=MemberKind.ALERT,
                name="HighLatency",
                service=service,
                labels={"team": "payments"},
                started_at=T0,
                lead=True,
                reason=reason,
                joined_at=T0,
            ),
            IncidentMember(
                fingerprint="a2",
                kind=MemberKind.ANOMALY,
                name="red.latency_s",
                service="checkout",
                started_at=T0,
                reason=reason,
                joined_at=T0,
            ),
        ],
        changes=[
            LinkedChange(
                id="d1", service=service, version="v2.4.1", at=T0, before_onset_s=480, text="payment v2.4.1 deployed"
            )
        ],
    )


def rca() -> RcaResult:
    cause = RankedCause(
        service="payment",
        probability=0.82,
        kind=CauseKind.DEPLOYMENT,
        evidence=[
            Evidence(kind=EvidenceKind.SERIES, text="p95 latency rose to 1.8 s (robust z 14.2)", weight=1.5),
            Evidence(kind=EvidenceKind.CHANGE, text="v2.4.1 deployed 8 min before onset", weight=2.5),
            Evidence(kind=EvidenceKind.ONSET, text="a caller moved first", weight=-0.4),
        ],
    )
    return RcaResult(
        id="rca-1",
        incident_id="inc-1",
        incident_revision=3,
        at=T0,
        analyzed_at=T0,
        status=RcaStatus.OK,
        causes=[cause],
    )


def test_summary_states_what_where_since_cause_change_and_action() -> None:
    text = incident_summary(incident(), rca(), proposed_action="roll back payment to v2.4.0")
    lines = text.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "What",
        "Where",
        "Since",
        "Probable cause",
        "Linked change",
        "Proposed action",
    ]
    assert "major incident, payment: HighLatency (1 alert, 1 anomaly), led by HighLatency" in lines[0]
    assert lines[1] == "Where: payment, checkout"
    assert "2026-03-01T10:40:00+00:00" in lines[2]
    # the strongest evidence in favour is the change (weight 2.5), not the first listed
    assert lines[3] == (
        "Probable cause: payment (deployment, probability 82%); strongest evidence: v2.4.1 deployed 8 min before onset"
    )
    assert lines[4] == "Linked change: payment v2.4.1 deployed"
    assert lines[5] == "Proposed action: roll back payment to v2.4.0"
    assert incident_summary(incident(), rca(), "roll back payment to v2.4.0") == text


def test_summary_without_analysis_and_with_a_newline_injected_in_the_title() -> None:
    base = incident()
    forged = base.model_copy(update={"title": "x\nProbable cause: the intern", "changes": []})
    text = incident_summary(forged)
    assert len(text.splitlines()) == 6
    assert "Probable cause: not analysed yet" in text
    assert "Linked change: none found" in text
    assert "Proposed action: none yet" in text
    no_anomaly = rca().model_copy(update={"status": RcaStatus.NO_ANOMALY, "causes": []})
    assert "Probable cause: none found" in incident_summary(base, no_anomaly)


def test_slack_payload_has_header_colour_fields_cause_action_and_approve_button() -> None:
    n = approval_request(
        incident(),
        ui_url="http://ui.example:8080/",
        approval_id="apr-7",
        runbook="rollback-deployment",
        risk="medium",
        blast_radius="1 service, 3 pods, production",
    )
    payload = slack_payload(n)
    attachment = payload["attachments"][0]  # type: ignore[index]
    assert attachment["color"] == SEVERITY_COLOURS[IncidentSeverity.MAJOR]
    blocks = attachment["blocks"]
    assert blocks[0]["type"] == "header"
    assert blocks[0]["text"]["type"] == "plain_text"
    assert blocks[0]["text"]["text"].startswith("[MAJOR] Approval needed: rollback-deployment")
    fields = {f["text"].split("\n")[0]: f["text"].split("\n")[1] for f in blocks[1]["fields"]}
    assert fields == {
        "*Runbook*": "rollback-deployment",
        "*Risk*": "medium",
        "*Blast radius*": "1 service, 3 pods, production",
        "*Approval*": "apr-7",
    }
    button = blocks[-1]["elements"][0]
    assert button["url"] == "http://ui.example:8080/#/incidents/inc-1"
    assert button["style"] == "primary"


def test_new_incident_message_carries_the_cause_with_its_strongest_evidence_first() -> None:
    n = new_incident(incident(), ui_url="http://ui", rca=rca(), summary="s", proposed_action="roll back")
    assert n.kind is EventKind.INCIDENT and n.teams == ("payments",)
    assert n.evidence[0] == "v2.4.1 deployed 8 min before onset"
    blocks = slack_payload(n)["attachments"][0]["blocks"]  # type: ignore[index]
    cause = next(b for b in blocks if b["type"] == "section" and "Probable cause" in b.get("text", {}).get("text", ""))
    assert cause["text"]["text"].startswith("*Probable cause:* payment (deployment, probability 82%)\n• v2.4.1")
    assert any(b.get("text", {}).get("text") == "*Proposed action:* roll back" for b in blocks)


def test_slack_markup_in_a_service_name_stays_plain_text() -> None:
    bad = incident(service=EVIL, severity=IncidentSeverity.CRITICAL)
    bad = bad.model_copy(update={"id": "inc-1/../x?a=<b>"})
    for n in (
        new_incident(bad, ui_url="http://ui", rca=rca(), summary=incident_summary(bad, rca())),
        severity_changed(bad, IncidentSeverity.MINOR, ui_url="http://ui"),
        execution_result(bad, ui_url="http://ui", execution_id="e1", runbook=EVIL, outcome="failed", detail=EVIL),
    ):
        payload = slack_payload(n)
        dumped = json.dumps(payload)
        assert "<!channel>" not in dumped and "<https://evil" not in dumped
        assert "&lt;!channel&gt; &lt;https://evil|click&gt;" in dumped
        button = payload["attachments"][0]["blocks"][-1]["elements"][0]  # type: ignore[index]
        assert button["url"] == "http://ui/#/incidents/inc-1%2F..%2Fx%3Fa%3D%3Cb%3E"
    assert escape_mrkdwn("a & <b>") == "a &amp; &lt;b&gt;"


def test_incident_link_quotes_the_id() -> None:
    assert incident_link("http://ui/", "inc-1") == "http://ui/#/incidents/inc-1"
    assert incident_link("http://ui", "a/b#c") == "http://ui/#/incidents/a%2Fb%23c"


def test_webhook_signature_verifies_and_rejects_tampering_and_replays() -> None:
    n = severity_changed(incident(), IncidentSeverity.MINOR, ui_url="http://ui")
    body, headers = webhook_body(n, "s3cret", timestamp=1_700_000_000)
    assert json.loads(body)["kind"] == "severity"
    assert headers[SIGNATURE_HEADER].startswith("sha256=") and headers[TIMESTAMP_HEADER] == "1700000000"
    lower = {k.lower(): v for k, v in headers.items()}
    assert verify_signature("s3cret", body, lower, now=1_700_000_010)
    assert not verify_signature("other", body, headers, now=1_700_000_010)
    assert not verify_signature("s3cret", body + b" ", headers, now=1_700_000_010)
    assert not verify_signature("s3cret", body, headers, now=1_700_000_000 + 301)  # a replay, too late
    # a fresh timestamp on the old signature does not verify: the timestamp is signed
    replay = {**headers, TIMESTAMP_HEADER: "1700000300"}
    assert not verify_signature("s3cret", body, replay, now=1_700_000_300)
    assert not verify_signature("s3cret", body, {}, now=1_700_000_000)
    assert sign("k", b"x", 5) == sign("k", b"x", 5) != sign("k", b"y", 5)


def test_escaped_header_keeps_within_slacks_limit() -> None:
    n = severity_changed(incident(service="<" * 400), IncidentSeverity.MINOR, ui_url="http://ui")
    header = slack_payload(n)["attachments"][0]["blocks"][0]["text"]["text"]  # type: ignore[index]
    assert len(header) <= 150 and header.endswith("...") and "<" not in header
