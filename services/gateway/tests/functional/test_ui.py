"""The operator UI end to end in headless Chromium: log in with a key, see an incident appear live, open it (RCA
ranking, chart), give feedback that reaches the platform, approve a runbook execution after reading its dry run,
and see injected markup shown as text."""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiops_common.broker.publisher import Message
from aiops_common.broker.reader import read_values
from aiops_common.schemas import (
    AnomalyRecord,
    ApprovalDecision,
    ApprovalRecord,
    Decision,
    Evidence,
    EvidenceKind,
    ExecutionStatus,
    FeedbackRecord,
    IncidentMember,
    IncidentRecord,
    IncidentSeverity,
    JoinReason,
    MemberKind,
    RankedCause,
    RcaResult,
    RcaStatus,
    SchemaError,
    execution_document,
    rca_result_id,
)
from aiops_common.schemas.actions import Transition
from aiops_common.schemas.metrics import MetricBatchBuilder
from aiops_common.schemas.rca import CauseKind
from aiops_common.testing.eventually import eventually, scaled
from aiops_common.testing.records import service_anomaly
from aiops_common.topics import Topics
from aiops_common.topology import Dependency, Service
from aiops_gateway.auth import Role
from aiops_gateway.context import Gateway
from aiops_gateway.testing import RunningGateway, start_gateway
from aiops_gateway.ui import STATIC_DIR
from pydantic_settings import BaseSettings, SettingsConfigDict

from .test_approvals import execution, store
from .test_demo_routes import ControlServer

playwright = pytest.importorskip("playwright.async_api")

pytestmark = pytest.mark.functional

CHROMIUM = Path("/usr/bin/chromium")
XSS = "<img src=x onerror=alert(1)>"


class UiTestSettings(BaseSettings):
    """``AIOPS_REQUIRE_INTEGRATION`` (CI: a missing browser fails) and ``AIOPS_TEST_ARTIFACTS`` (where the
    screenshots are copied to)."""

    __test__ = False
    model_config = SettingsConfigDict(env_prefix="AIOPS_", env_file=".env", frozen=True, extra="ignore")

    require_integration: bool = False
    test_artifacts: Path | None = None


@dataclass
class PageWatch:
    """What the page did that it must not: console errors, uncaught errors, dialogs, requests off this host."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> None:
        page.on("console", lambda m: self.console_errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.page_errors.append(str(e)))
        page.on("dialog", self._dialog)
        page.on("request", self._request)

    async def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        await dialog.dismiss()

    def _request(self, request: Any) -> None:
        parts = urlsplit(request.url)
        if parts.scheme in ("http", "https", "ws", "wss") and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            self.foreign_requests.append(request.url)


@pytest.fixture
def chromium() -> Path:
    """The system's Chromium: missing, the test skips (fails under ``AIOPS_REQUIRE_INTEGRATION=1``)."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is not installed (apt-get install chromium); the UI test never downloads a browser"
        if UiTestSettings().require_integration:
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[Any]:
    async with playwright.async_playwright() as p:
        launched = await p.chromium.launch(executable_path=str(chromium), headless=True, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
def artifacts(tmp_path: Path) -> Iterator[Path]:
    """Screenshots go to the test's folder, and to ``AIOPS_TEST_ARTIFACTS`` when it is set."""
    folder = tmp_path / "screenshots"
    folder.mkdir()
    yield folder
    target = UiTestSettings().test_artifacts
    if target is not None:
        target.mkdir(parents=True, exist_ok=True)
        for shot in folder.iterdir():
            shutil.copy2(shot, target / f"gateway-ui-{shot.name}")


def member(record: AnomalyRecord | None, **fields: Any) -> IncidentMember:
    defaults: dict[str, Any] = {"severity": IncidentSeverity.CRITICAL}
    if record is not None:
        defaults |= {
            "fingerprint": record.id,
            "kind": MemberKind.ANOMALY,
            "name": record.series_name,
            "service": record.service,
            "labels": record.labels,
            "started_at": record.window_start,
            "ended_at": record.window_end,
        }
    merged = defaults | fields
    return IncidentMember(**merged, joined_at=merged["started_at"])


async def store_incident(gw: Gateway, record: IncidentRecord, rca: RcaResult | None = None) -> None:
    """Write the incident's document as correlation's archive does (and its analysis as RCA does)."""
    body: dict[str, Any] = record.document()
    if rca is not None:
        await gw.documents.upsert("rca_results", rca.id, rca.document())
        body["rca"] = {
            "id": rca.id,
            "revision": rca.incident_revision,
            "status": rca.status.value,
            "causes": [{"service": c.service, "probability": c.probability, "kind": c.kind.value} for c in rca.causes],
        }
    await gw.documents.upsert("incidents", record.id, body)
    await gw.documents.refresh("incidents")


async def seed_topology(gw: Gateway, now: datetime) -> None:
    names = ["frontend", "checkout", "payment", "db", "search", XSS]
    await gw.topology.upsert_services([Service(n, {"tier": "web" if n == "frontend" else "backend"}) for n in names])
    edges = [
        ("frontend", "checkout"),
        ("frontend", "search"),
        ("checkout", "payment"),
        ("payment", "db"),
        ("search", XSS),
    ]
    await gw.topology.upsert_dependencies(
        [Dependency(a, b, frozenset({"file"}), now - timedelta(days=1), now) for a, b in edges]
    )


async def injected_incident(gw: Gateway, now: datetime) -> IncidentRecord:
    """An open incident whose service name and title carry markup: it must show as text, run nothing."""
    started = now - timedelta(minutes=20)
    record = IncidentRecord(
        id="inc-injected",
        revision=1,
        title="<script>alert(2)</script> search latency",
        summary=XSS,
        severity=IncidentSeverity.MINOR,
        services=[XSS],
        started_at=started,
        updated_at=started,
        members=[
            member(
                None,
                fingerprint="fp-injected",
                kind=MemberKind.ALERT,
                name=XSS,
                service=XSS,
                started_at=started,
                lead=True,
                reason=JoinReason(rule="seed", text=XSS),
            )
        ],
    )
    await store_incident(gw, record)
    return record


async def payment_incident(gw: Gateway, now: datetime) -> tuple[IncidentRecord, AnomalyRecord]:
    """A payment latency incident as correlation and RCA leave it: documents, TSDB samples, log lines."""
    onset = now - timedelta(minutes=8)
    anomaly = service_anomaly("http_p95_latency_s", "payment", onset, timedelta(minutes=2), value=1.9)
    anomaly = anomaly.model_copy(update={"lower": 0.12, "upper": 0.35})
    await gw.documents.upsert("anomalies", anomaly.id, {**anomaly.model_dump(mode="json"), "services": ["payment"]})
    builder = MetricBatchBuilder()
    start_ms = int((onset - timedelta(minutes=30)).timestamp() * 1000)
    for i in range(0, 45 * 4):
        ts = start_ms + i * 15_000
        in_window = int(onset.timestamp() * 1000) <= ts < int(anomaly.window_end.timestamp() * 1000)
        builder.add(
            "http_p95_latency_s",
            {"service": "payment"},
            ts,
            1.8 + (i % 3) * 0.05 if in_window else 0.2 + (i % 5) * 0.02,
        )
    await gw.tsdb.write(builder.build())
    for offset, severity, text in ((-60, "WARN", "slow query on db pool"), (30, "ERROR", "payment timed out after 2s")):
        at = onset + timedelta(seconds=offset)
        await gw.documents.upsert(
            "logs",
            f"log-{offset}",
            {"at": at.isoformat(), "services": ["payment"], "severity": severity, "source": "pod-1", "message": text},
        )
    record = IncidentRecord(
        id="inc-payment",
        revision=3,
        title="payment: latency up, checkout errors",
        summary="p95 latency of payment rose tenfold; checkout errors followed",
        severity=IncidentSeverity.CRITICAL,
        services=["payment", "checkout"],
        started_at=onset,
        updated_at=onset + timedelta(minutes=1),
        members=[
            member(anomaly, lead=True, reason=JoinReason(rule="seed", text="opened the incident")),
            member(
                None,
                fingerprint="fp-checkout-errors",
                kind=MemberKind.ALERT,
                name="HighErrorRate",
                service="checkout",
                started_at=onset + timedelta(seconds=40),
                reason=JoinReason(
                    rule="topology",
                    related_to=anomaly.id,
                    path=["checkout", "payment"],
                    text="checkout calls payment (1 hop), 40 s after payment/http_p95_latency_s",
                ),
            ),
        ],
    )
    rca = RcaResult(
        id=rca_result_id(record.id, record.revision),
        incident_id=record.id,
        incident_revision=record.revision,
        at=record.updated_at,
        analyzed_at=now,
        status=RcaStatus.OK,
        services=["payment", "checkout", "db"],
        causes=[
            RankedCause(
                service="payment",
                probability=0.74,
                kind=CauseKind.LATENCY,
                evidence=[
                    Evidence(
                        kind=EvidenceKind.SERIES, text="http_p95_latency_s rose to 1.9 s (robust z 14.2)", weight=2.6
                    ),
                    Evidence(kind=EvidenceKind.TOPOLOGY, text="reaches checkout through calls", weight=0.9),
                ],
            ),
            RankedCause(
                service="db",
                probability=0.2,
                kind=CauseKind.SATURATION,
                evidence=[Evidence(kind=EvidenceKind.ONSET, text="payment moved before db", weight=-0.7)],
            ),
        ],
        summary="payment is the likeliest cause (latency)",
    )
    await store_incident(gw, record, rca)
    return record, anomaly


def feedback_labels(values: list[bytes]) -> list[FeedbackRecord]:
    labels = []
    for value in values:
        try:
            labels.append(FeedbackRecord.decode(value))
        except SchemaError:
            continue
    return labels


async def test_operator_sees_an_incident_live_opens_it_and_confirms_its_cause(
    running_gateway: RunningGateway, browser: Any, artifacts: Path
) -> None:
    gw = running_gateway.gateway
    now = datetime.now(UTC)
    await seed_topology(gw, now)
    await injected_incident(gw, now)
    key = await running_gateway.key(Role.OPERATOR)
    timeout_ms = scaled(30.0) * 1000

    context = await browser.new_context(viewport={"width": 1400, "height": 1000}, color_scheme="dark")
    page = await context.new_page()
    page.set_default_timeout(timeout_ms)
    watch = PageWatch()
    watch.attach(page)

    await page.goto(running_gateway.url + "/")
    await page.fill("#api-key", key)
    await page.click("#login-submit")
    await page.wait_for_selector("#whoami:has-text('test-operator (operator)')")
    injected_row = page.locator('tr[data-id="inc-injected"]')
    await injected_row.wait_for()
    assert XSS in await injected_row.inner_text()
    assert "<script>alert(2)</script>" in await injected_row.inner_text()

    # The list is showing and following the feed; what comes now can only arrive through it.
    await page.wait_for_selector('#live-state[data-state="live"]')
    await eventually(lambda: gw.live.connected, timeout=60, what="the gateway following the broker")
    record, anomaly = await payment_incident(gw, now)
    await gw.publisher.publish([Message(Topics.INCIDENTS, record.encode(), key=record.id.encode())])
    new_row = page.locator('tr[data-id="inc-payment"]')
    await new_row.wait_for()
    assert "flash" in (await new_row.get_attribute("class") or "")
    assert await page.locator("#incident-rows tr").first.get_attribute("data-id") == "inc-payment"
    await page.screenshot(path=str(artifacts / "incidents.png"), full_page=True)

    await new_row.locator("a.incident-link").click()
    await page.wait_for_selector("#incident-title:has-text('payment: latency up')")
    causes = page.locator("#rca-causes > li.cause")
    await causes.first.wait_for()
    assert await causes.count() == 2
    assert "74%" in await causes.first.inner_text()
    assert "robust z 14.2" in await causes.first.inner_text()
    chart = page.locator(f'figure[data-anomaly="{anomaly.id}"] svg.chart')
    await chart.wait_for()
    assert await chart.locator("path.line").count() == 1
    assert await chart.locator("rect.band").count() == 1
    assert await chart.locator("rect.anomaly-window").count() == 1
    assert "checkout calls payment (1 hop)" in await page.locator("#members").inner_text()
    assert "payment timed out after 2s" in await page.locator("#logs").inner_text()
    assert "No runbook proposed yet" in await page.locator("#executions").inner_text()

    confirm = page.locator('li.cause[data-service="payment"] button[data-feedback="confirmed_cause"]')
    await confirm.click()
    await page.wait_for_selector('li.cause[data-service="payment"] button.done')
    await page.screenshot(path=str(artifacts / "incident.png"), full_page=True)

    def confirmed(values: list[bytes]) -> bool:
        return any(
            f.label.value == "confirmed_cause" and f.subject_id == "inc-payment" and f.related_id == "payment"
            for f in feedback_labels(values)
        )

    values = await read_values(
        running_gateway.settings.broker_url or gw.publisher.broker_url,
        Topics.FEEDBACK,
        running_gateway.settings.topic_prefix,
        until=confirmed,
        timeout_s=scaled(60.0),
    )
    label = next(f for f in feedback_labels(values) if f.related_id == "payment")
    assert (label.subject_kind, label.by) == ("incident", "test-operator")
    # The feedback is in the audit log, which the incident page shows.
    await page.reload()
    audit_entry = page.locator("#audit li:has-text('feedback.confirmed_cause')")
    await audit_entry.wait_for()
    assert "test-operator" in await audit_entry.inner_text()

    await page.goto(running_gateway.url + "/#/incidents/inc-injected")
    await page.wait_for_selector("#incident-title")
    assert await page.locator("#incident-title").inner_text() == "<script>alert(2)</script> search latency"
    assert XSS in await page.locator(".incident-head .service-chip").inner_text()
    assert XSS in await page.locator("#members").inner_text()

    await page.click("#nav a[data-route='map']")
    await page.wait_for_selector("#service-map")
    assert await page.locator('g.node-hot[data-service="payment"]').count() == 1
    assert await page.locator(f'g.node-hot[data-service="{XSS}"]').count() == 1
    assert await page.locator('g.node[data-service="frontend"]:not(.node-hot)').count() == 1
    assert await page.locator("#service-map path.edge").count() == 5
    await page.screenshot(path=str(artifacts / "map.png"), full_page=True)

    assert await page.evaluate("document.querySelectorAll('img[src=\"x\"], script:not([src])').length") == 0
    assert watch.dialogs == []
    assert watch.page_errors == []
    assert watch.console_errors == []
    assert watch.foreign_requests == []

    await page.click("#logout")
    await page.wait_for_selector("#login-form")
    assert await page.evaluate("sessionStorage.length") == 0
    await context.close()


async def test_assets_ship_in_the_package_and_keep_to_the_content_security_policy(
    running_gateway: RunningGateway,
) -> None:
    """No inline script or style (the CSP forbids them), no markup from data, nothing from another host."""
    index = (STATIC_DIR / "index.html").read_text()
    assert re.search(r"<script(?![^>]*\bsrc=)", index) is None
    assert "<style" not in index
    assert re.search(r"\sstyle=", index) is None
    assets = sorted(p for p in STATIC_DIR.rglob("*") if p.is_file())
    for script in (p for p in assets if p.suffix == ".js"):
        text = script.read_text()
        assert "innerHTML" not in text and "insertAdjacentHTML" not in text and "document.write" not in text, script
        assert re.findall(r"https?://(?!www\.w3\.org/2000/svg)", text) == [], script
    async with await running_gateway.client(None) as client:
        page = await client.get("/")
        assert page.status_code == 200
        assert "script-src 'self'" in page.headers["content-security-policy"]
        for path in assets:
            served = await client.get(f"/ui/{path.relative_to(STATIC_DIR).as_posix()}")
            assert served.status_code == 200, path
            assert served.headers["cache-control"] == "no-cache"
            assert served.content == path.read_bytes()


async def test_a_key_revoked_during_a_session_returns_to_the_login(
    tmp_path: Path, broker_url: str, topic_prefix: str, browser: Any
) -> None:
    """Any 401 (here: the viewer's key revoked while the page is open) shows the login screen and forgets the key."""
    servers, running = await start_gateway(tmp_path, broker_url, topic_prefix, gateway_key_cache_s=0.0)
    try:
        key = await running.key(Role.VIEWER)
        context = await browser.new_context()
        page = await context.new_page()
        page.set_default_timeout(scaled(30.0) * 1000)
        await page.goto(running.url + "/")
        await page.fill("#api-key", key)
        await page.click("#login-submit")
        await page.wait_for_selector("#whoami:has-text('test-viewer (viewer)')")
        await page.wait_for_selector("#incidents-empty")
        await page.wait_for_selector('#nav[data-demo="off"]', state="attached")
        assert await page.locator("#nav-demo").is_hidden()  # no demo configured: no panel offered
        key_id = next(k.id for k in await running.gateway.auth.keys.list() if k.name == "test-viewer")
        await running.gateway.auth.keys.revoke(key_id)
        await page.click("#nav a[data-route='map']")
        await page.wait_for_selector("#login-form")
        assert "no longer accepted" in await page.locator("#login-error").inner_text()
        assert await page.locator("#whoami").is_hidden()
        assert await page.evaluate("sessionStorage.length") == 0
        await context.close()
    finally:
        await servers.stop()


def approval_records(values: list[bytes]) -> list[ApprovalRecord]:
    return [ApprovalRecord.decode(v) for v in values]


async def test_approver_reads_the_dry_run_and_approves_from_the_incident_page(
    running_gateway: RunningGateway, browser: Any, artifacts: Path
) -> None:
    gw = running_gateway.gateway
    now = datetime.now(UTC)
    record, _ = await payment_incident(gw, now)
    proposed = execution(record.id, "restart-service", requested_by="action", services=("payment", "checkout"))
    proposed = proposed.model_copy(update={"note": XSS})
    own = execution(record.id, "rollback-deployment", requested_by="test-approver", requested_ago=timedelta(minutes=2))
    # A proposal a newer ranking replaced: shown muted with what replaced it and why, never offered for a decision.
    old = execution(record.id, "restart-service", attempt=2, requested_ago=timedelta(minutes=9))
    superseded_note = "superseded by the newer ranking rca-7 (payment first); 1 of 1 approvals given do not carry over"
    old = old.model_copy(
        update={
            "status": ExecutionStatus.SUPERSEDED,
            "superseded_by": proposed.id,
            "history": [*old.history, Transition(at=now, status="superseded", by="action", note=superseded_note)],
        }
    )
    await store(running_gateway, proposed, own, old)
    await gw.documents.upsert(
        "runbooks",
        "scale-service",
        {"id": "scale-service", "title": "Scale a saturated service", "risk": "low", "loaded_at": now.isoformat()},
    )
    key = await running_gateway.key(Role.APPROVER)
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    page.set_default_timeout(scaled(30.0) * 1000)
    watch = PageWatch()
    watch.attach(page)

    await page.goto(running_gateway.url + "/")
    await page.fill("#api-key", key)
    await page.click("#login-submit")
    await page.wait_for_selector("#approvals-waiting:has-text('2 approvals waiting')")
    await page.click("#approvals-waiting")
    await page.wait_for_selector(f'#approval-rows tr[data-execution="{proposed.id}"]')
    assert "0 of 1" in await page.locator(f'#approval-rows tr[data-execution="{proposed.id}"]').inner_text()
    await page.locator(f'#approval-rows tr[data-execution="{proposed.id}"] a.incident-link').click()

    card = page.locator(f'article.execution[data-execution="{proposed.id}"]')
    await card.wait_for()
    text = await card.inner_text()
    assert "would restart shop/payment" in text  # the dry run's summary
    assert "PATCH" in await card.locator(".dry-run-steps .step-output").inner_text()
    assert "contained: 2 services (payment, checkout), 3 pods in prod" in text
    assert "0 of 1 approvals" in text and "1 approver(s)" in text
    assert XSS in await card.locator(".note").inner_text()
    assert "http_p95_latency_s" in await card.locator(".verification").inner_text()
    replaced = page.locator(f'article.execution[data-execution="{old.id}"][data-status="superseded"]')
    assert f"Superseded by {proposed.id} — {superseded_note}" in await replaced.locator(".superseded").inner_text()
    assert await replaced.locator("button[data-decision]").count() == 0

    # Refusals show why: a rejection without a comment (checked in the page), one's own request (by the API).
    await card.locator('button[data-decision="reject"]').click()
    assert "needs a comment" in await card.locator(".decision-error").inner_text()
    mine = page.locator(f'article.execution[data-execution="{own.id}"]')
    await mine.locator('button[data-decision="approve"]').click()
    await mine.locator(".decision-error:has-text('a requester never approves its own request')").wait_for()

    await card.locator("textarea.decision-comment").fill("dry run looks right")
    await card.locator('button[data-decision="approve"]').click()
    await card.locator(".decision-result:has-text('Approval sent')").wait_for()
    await page.screenshot(path=str(artifacts / "approval.png"), full_page=True)

    def approved(values: list[bytes]) -> bool:
        return any(r.decision is ApprovalDecision.APPROVE for r in approval_records(values))

    broker = gw.publisher.broker_url
    prefix = running_gateway.settings.topic_prefix
    values = await read_values(broker, Topics.APPROVALS, prefix, until=approved, timeout_s=scaled(60.0))
    assert [(r.decision, r.execution_id, r.by, r.comment, r.via) for r in approval_records(values)] == [
        (ApprovalDecision.APPROVE, proposed.id, "test-approver", "dry run looks right", "api")
    ]

    # The action service applies it: the section follows the execution's new state from the live feed.
    await eventually(lambda: gw.live.connected, timeout=60, what="the gateway following the broker")
    decision = Decision(by="test-approver", role="approver", decision="approve", at=datetime.now(UTC))
    applied = proposed.model_copy(update={"status": ExecutionStatus.APPROVED, "approvals": [decision]})
    await gw.documents.upsert("executions", applied.id, execution_document(applied))
    await gw.publisher.publish([Message(Topics.ACTIONS, applied.encode(), key=applied.id.encode())])
    approved_card = page.locator(f'article.execution[data-execution="{proposed.id}"][data-status="approved"]')
    await approved_card.wait_for()
    assert "1 of 1 approvals" in await approved_card.inner_text()
    assert await approved_card.locator("button[data-decision]").count() == 0
    # The page reloaded with it: the audit log's entry of the approval is there.
    await page.locator("#audit li:has-text('execution.approve')").wait_for()
    assert "dry run looks right" in await page.locator("#audit li:has-text('execution.approve')").inner_text()

    # Proposing a runbook sends a request for this incident.
    await page.select_option("#propose-runbook", "scale-service")
    await page.fill("#propose-note", "more replicas")
    await page.click("#propose-submit")
    await page.wait_for_selector("#propose-message:has-text('Requested scale-service')")

    def requested(values: list[bytes]) -> bool:
        return any(r.decision is ApprovalDecision.REQUEST for r in approval_records(values))

    values = await read_values(broker, Topics.APPROVALS, prefix, until=requested, timeout_s=scaled(60.0))
    request = next(r for r in approval_records(values) if r.decision is ApprovalDecision.REQUEST)
    assert (request.incident_id, request.runbook_id, request.comment) == (record.id, "scale-service", "more replicas")

    assert await page.evaluate("document.querySelectorAll('img[src=\"x\"], script:not([src])').length") == 0
    assert watch.dialogs == [] and watch.page_errors == [] and watch.foreign_requests == []
    # The refused self-approval is the one failed request the console reports.
    assert [e for e in watch.console_errors if "403" not in e] == []
    await context.close()


async def test_operator_injects_a_fault_from_the_demo_panel(
    tmp_path: Path, broker_url: str, topic_prefix: str, browser: Any, artifacts: Path
) -> None:
    """The demo panel shows the shop's services (a service named with markup as text), sends the fault with the
    chosen duration, shows it with its time left, shows the demo's refusal, and clears the faults."""
    control_server = ControlServer()
    control_server.services[XSS] = {"replicas": 1, "version": "<b>9</b>", "healthy": None}
    async with control_server.running() as control:
        servers, running = await start_gateway(tmp_path, broker_url, topic_prefix, gateway_demo_url=control.url)
        try:
            key = await running.key(Role.OPERATOR)
            context = await browser.new_context(viewport={"width": 1400, "height": 1000})
            page = await context.new_page()
            page.set_default_timeout(scaled(30.0) * 1000)
            watch = PageWatch()
            watch.attach(page)

            await page.goto(running.url + "/")
            await page.fill("#api-key", key)
            await page.click("#login-submit")
            await page.click("#nav-demo")
            payment = page.locator('#demo-services tr[data-service="payment"]')
            await payment.wait_for()
            assert await page.locator("#demo-services tr").count() == 6
            text = await payment.inner_text()
            assert "1.4.0" in text and "healthy" in text and "unhealthy" not in text
            assert await payment.locator("td.replicas").inner_text() == "2"
            assert "unhealthy" in await page.locator('#demo-services tr[data-service="inventory"]').inner_text()
            injected_row = page.locator(f'#demo-services tr[data-service="{XSS}"]')
            assert XSS in await injected_row.inner_text()
            assert "<b>9</b>" in await injected_row.inner_text()
            assert await page.locator("#demo-no-faults").is_visible()

            await page.select_option("#demo-duration", "900")
            await payment.locator('button[data-kind="latency"]').click()
            await page.wait_for_selector("#demo-message:has-text('Injected latency into payment for 15 min')")
            assert control.posted_faults() == [{"service": "payment", "kind": "latency", "for_s": 900}]
            fault_row = page.locator('#demo-faults tr[data-fault="fault-1"]')
            await fault_row.wait_for()
            assert "payment" in await fault_row.inner_text()
            assert re.fullmatch(r"1[45] min \d+ s", await fault_row.locator("td.time-left").inner_text())
            await payment.locator(".fault-chip:has-text('latency')").wait_for()
            await page.screenshot(path=str(artifacts / "demo.png"), full_page=True)

            control.refusal = "payment is being redeployed"
            await payment.locator('button[data-kind="bad-deploy"]').click()
            await page.wait_for_selector("#demo-message.error:has-text('payment is being redeployed')")
            assert control.posted_faults()[-1] == {"service": "payment", "kind": "bad-deploy", "for_s": 900}

            await page.click("#demo-clear")
            await page.wait_for_selector("#demo-message:has-text('Cleared 1 fault.')")
            assert ("DELETE", "/faults") in [(method, path) for method, path, _ in control.received]
            await page.locator("#demo-no-faults").wait_for()

            assert await page.evaluate("document.querySelectorAll('img[src=\"x\"], script:not([src]), b').length") == 0
            assert watch.dialogs == [] and watch.page_errors == [] and watch.foreign_requests == []
            # The demo's refusal is the one failed request the console reports.
            assert [e for e in watch.console_errors if "400" not in e] == []
            await context.close()
        finally:
            await servers.stop()
