"""The injection corpus through every input of the running demo platform: alert labels (Alertmanager webhook), metric
labels (JSON metrics API, Prometheus remote write, OTLP), log bodies (JSON logs API and OTLP logs), topology names (the
topology file and deployment events), runbook parameters and the name of the key that asks for a runbook. Each value
is refused with a 4xx that says why, or kept as the very text sent; none reaches a shell or names a file; the UI shows
the kept ones as text in Chromium (incident list, incident page, service map, a service's incidents, approvals) and
runs none of their script. Every topology sent keeps the shop's, so the loop that runs after these tests is not
disturbed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import cramjam
import httpx
import pytest
from aiops_cli.demo.session import TOPOLOGY
from aiops_common.prompb.remote_pb2 import WriteRequest
from aiops_common.prompb.types_pb2 import Label, Sample, TimeSeries
from aiops_common.testing.eventually import eventually, scaled
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import SeverityNumber

from .conftest import INJECTIONS, Platform, ProcessWatch, aiops, assert_refused_clearly, nothing_reached_a_shell

pytestmark = pytest.mark.functional

CHROMIUM = Path("/usr/bin/chromium")
#: Payloads whose text the UI must show literally (they are the ones that would run script if put in as markup).
MARKUP = ("script", "img-onerror", "attribute-break")
SHOWS_ANY = "values => values.some(v => document.body.innerText.includes(v))"


@dataclass
class Sent:
    """What each input answered for each payload (by corpus key)."""

    topology: dict[str, httpx.Response] = field(default_factory=dict)
    alerts: dict[str, httpx.Response] = field(default_factory=dict)
    metric_values: dict[str, httpx.Response] = field(default_factory=dict)
    metric_names: dict[str, httpx.Response] = field(default_factory=dict)
    remote_write: dict[str, httpx.Response] = field(default_factory=dict)
    otlp: dict[str, httpx.Response] = field(default_factory=dict)
    logs: dict[str, httpx.Response] = field(default_factory=dict)
    otlp_logs: dict[str, httpx.Response] = field(default_factory=dict)
    deployments: dict[str, httpx.Response] = field(default_factory=dict)

    def accepted(self, kind: str) -> dict[str, str]:
        answers: dict[str, httpx.Response] = getattr(self, kind)
        return {k: INJECTIONS[k] for k, r in answers.items() if 200 <= r.status_code < 300}


KINDS = tuple(Sent.__dataclass_fields__)

PROTOBUF = {"Content-Type": "application/x-protobuf"}
#: Before an OTLP log's body, to tell it from the same text sent to the JSON logs API.
OTLP_BODY = "otlp: "
REMOTE_WRITE = {**PROTOBUF, "Content-Encoding": "snappy", "X-Prometheus-Remote-Write-Version": "0.1.0"}


def _otlp(value: str) -> bytes:
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value=value)))
    metric = rm.scope_metrics.add().metrics.add()
    metric.name = "injected_gauge"
    point = metric.gauge.data_points.add()
    point.time_unix_nano = int(datetime.now(UTC).timestamp() * 1e9)
    point.as_double = 1.0
    point.attributes.append(KeyValue(key="probe_otlp", value=AnyValue(string_value=value)))
    return req.SerializeToString()


def _otlp_logs(value: str) -> bytes:
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value=value)))
    record = rl.scope_logs.add().log_records.add()
    record.time_unix_nano = int(datetime.now(UTC).timestamp() * 1e9)
    record.severity_text = "ERROR"
    record.severity_number = SeverityNumber.SEVERITY_NUMBER_ERROR
    record.body.string_value = OTLP_BODY + value
    record.attributes.append(KeyValue(key="probe", value=AnyValue(string_value=value)))
    return req.SerializeToString()


def _remote_write(value: str, now_ms: int) -> bytes:
    series = TimeSeries(
        labels=[
            Label(name="__name__", value="injected_rw"),
            Label(name="job", value="inj"),
            Label(name="probe_rw", value=value),
        ],
        samples=[Sample(value=1.0, timestamp=now_ms)],
    )
    return bytes(cramjam.snappy.compress_raw(WriteRequest(timeseries=[series]).SerializeToString()))


def _with_the_shop(topology: dict[str, Any]) -> dict[str, Any]:
    """A topology payload with the shop's services and call edges kept (a PUT replaces the whole file)."""
    return {
        "services": [*TOPOLOGY["services"], *topology["services"]],
        "dependencies": [*TOPOLOGY["dependencies"], *topology["dependencies"]],
    }


def _webhook(n: int, value: str) -> dict[str, Any]:
    labels = {"alertname": f"InjectedAlert{n}", "service": value, "severity": "critical", "probe": value}
    return {
        "version": "4",
        "status": "firing",
        "receiver": "bad-actors",
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": {"summary": value, "description": value},
                "startsAt": datetime.now(UTC).isoformat(),
            }
        ],
    }


@pytest.fixture(scope="module")
def sent(platform: Platform) -> Sent:
    """Every payload through every input once (each in a request of its own, so one refusal hides no other)."""
    out = Sent()
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    with platform.client("admin") as admin, httpx.Client(base_url=platform.http_url, timeout=scaled(30.0)) as ingest:
        for n, (key, value) in enumerate(INJECTIONS.items()):
            topology = {
                "services": [{"name": value, "team": value}, {"name": f"inj-{n}", "team": value}],
                "dependencies": [{"from": f"inj-{n}", "to": value}],
            }
            out.topology[key] = admin.put("/api/v1/config/topology", json=_with_the_shop(topology))
            out.alerts[key] = ingest.post("/api/v1/alerts/ingest", json=_webhook(n, value))
            sample = {"name": "injected_metric", "value": 1.0, "timestamp": now_ms}
            out.metric_values[key] = ingest.post(
                "/api/v1/metrics/write", json={"samples": [{**sample, "labels": {"service": "inj", "probe": value}}]}
            )
            out.metric_names[key] = ingest.post(
                "/api/v1/metrics/write", json={"samples": [{**sample, "labels": {value: "x"}}]}
            )
            out.remote_write[key] = ingest.post(
                "/api/v1/write", content=_remote_write(value, now_ms), headers=REMOTE_WRITE
            )
            out.otlp[key] = ingest.post("/v1/metrics", content=_otlp(value), headers=PROTOBUF)
            out.logs[key] = ingest.post(
                "/api/v1/logs/write",
                json={"logs": [{"service": value, "message": value, "level": "error", "labels": {"probe": value}}]},
            )
            out.otlp_logs[key] = ingest.post("/v1/logs", content=_otlp_logs(value), headers=PROTOBUF)
            deployment = {
                "service": value,
                "version": value,
                "previous_version": value,
                "author": value,
                "description": value,
                "timestamp": now_ms,
            }
            out.deployments[key] = ingest.post("/api/v1/events/deployment", json=deployment)
    # The shop's topology as the demo loaded it: the last PUT above leaves the injected services beside it.
    return out


def _strings(value: Any) -> Iterator[str]:
    """Every string in a JSON document, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _holds(document: Any, value: str) -> bool:
    return any(value in s for s in _strings(document))


def test_every_input_refuses_clearly_or_accepts(sent: Sent, process_watch: ProcessWatch) -> None:
    for kind in KINDS:
        answers: dict[str, httpx.Response] = getattr(sent, kind)
        for key, response in answers.items():
            if not 200 <= response.status_code < 300:
                assert_refused_clearly(response, f"{kind} with {key}")
    # A label name must be a Prometheus name: every payload is refused as one, with the reason.
    assert sent.accepted("metric_names") == {}
    # Label values and log text are free text: markup and template syntax go in (to be shown as text).
    for kind in ("alerts", "metric_values", "remote_write", "otlp", "logs", "otlp_logs", "deployments"):
        assert {"jinja", "script", "img-onerror"} <= set(sent.accepted(kind)), (kind, sent.accepted(kind))
    nothing_reached_a_shell(process_watch)


def test_the_shop_s_topology_is_kept(platform: Platform, sent: Sent) -> None:
    with platform.client("viewer") as viewer:
        topology = viewer.get("/api/v1/topology").json()
    names = set(_strings(topology))
    assert {s["name"] for s in TOPOLOGY["services"]} <= names, topology


def test_topology_names_are_kept_as_text(platform: Platform, sent: Sent) -> None:
    with platform.client("viewer") as viewer:
        topology = viewer.get("/api/v1/topology").json()
    missing = [k for k, v in sent.accepted("topology").items() if not _holds(topology, v)]
    assert not missing, f"accepted topology names not shown as sent: {missing}"


def _incidents(platform: Platform) -> list[dict[str, Any]]:
    with platform.client("viewer") as viewer:
        listed = viewer.get("/api/v1/incidents", params={"limit": 200})
        listed.raise_for_status()
        return [viewer.get(f"/api/v1/incidents/{item['id']}").json() for item in listed.json()["incidents"]]


def test_alert_labels_are_kept_as_text_in_incidents(platform: Platform, sent: Sent) -> None:
    wanted = sent.accepted("alerts")

    def all_shown() -> list[dict[str, Any]]:
        incidents = _incidents(platform)
        missing = [k for k, v in wanted.items() if not any(_holds(i, v) for i in incidents)]
        assert not missing, f"accepted alert labels not (yet) in any incident: {missing}"
        return incidents

    incidents = asyncio.run(eventually(all_shown, timeout=scaled(90.0), what="incidents from the alerts", interval=1))
    # Template syntax stays as written: nothing evaluated {{7*7}} or ${7*7}.
    assert not any(_holds(i, "49") and not _holds(i, "{{7*7}}") for i in incidents if _holds(i, "InjectedAlert4"))


@pytest.mark.parametrize(
    ("kind", "label"), [("metric_values", "probe"), ("remote_write", "probe_rw"), ("otlp", "probe_otlp")]
)
def test_metric_labels_are_kept_as_text(platform: Platform, sent: Sent, kind: str, label: str) -> None:
    wanted = sent.accepted(kind)

    def all_stored() -> bool:
        with platform.client("viewer") as viewer:
            values = viewer.get(f"/api/v1/metrics/labels/{label}").json()
        missing = [k for k, v in wanted.items() if not _holds(values, v)]
        assert not missing, f"accepted {label} values not (yet) among the stored values: {missing}"
        return True

    asyncio.run(eventually(all_stored, timeout=scaled(90.0), what=f"the {label} values stored", interval=1))


def test_log_bodies_and_deployments_are_kept_as_text_in_incidents(platform: Platform, sent: Sent) -> None:
    """An injected alert's incident shows the log lines and the deployments of its service: the very text sent."""
    wanted = {k: v for k, v in sent.accepted("alerts").items() if k in MARKUP}
    wanted = {k: v for k, v in wanted.items() if k in sent.accepted("otlp_logs") and k in sent.accepted("deployments")}
    assert wanted, "no markup payload went in as an alert, an OTLP log and a deployment"

    def shown() -> bool:
        incidents = _incidents(platform)
        for key, value in wanted.items():
            mine = [i for i in incidents if value in i["incident"]["services"]]
            assert mine, f"no incident of the service {key} yet"
            logs = [line for i in mine for line in i.get("logs", [])]
            changes = [c for i in mine for c in i.get("changes", [])]
            for body in (value, OTLP_BODY + value):  # the JSON API's, the OTLP log's: each the very text sent
                assert any(body in _strings(line) for line in logs), f"{key}: no log line {body!r} yet: {logs[:3]}"
            assert any(_holds(c, value) for c in changes), f"{key}: no deployment of the version sent: {changes[:3]}"
        return True

    asyncio.run(eventually(shown, timeout=scaled(90.0), what="logs and deployments in the incidents", interval=1))


def _injected_incident(platform: Platform, sent: Sent) -> dict[str, Any]:
    """An incident of an injected alert (the shop's own incidents are the loop's)."""
    values = set(sent.accepted("alerts").values())

    def found() -> dict[str, Any]:
        mine = [i for i in _incidents(platform) if values & set(i["incident"]["services"])]
        assert mine, "no incident of an injected alert yet"
        return mine[0]

    found_one: dict[str, Any] = asyncio.run(
        eventually(found, timeout=scaled(90.0), what="an incident of an injected alert", interval=1)
    )
    return found_one


def test_runbook_parameters_are_refused_or_inert(platform: Platform, sent: Sent, process_watch: ProcessWatch) -> None:
    incident_id = _injected_incident(platform, sent)["incident"]["id"]
    with platform.client("viewer") as viewer:
        runbooks = viewer.get("/api/v1/runbooks", params={"limit": 100}).json()["runbooks"]
    with_params = [r for r in runbooks if r.get("parameters")]
    assert with_params, f"no loaded runbook takes parameters: {runbooks}"
    accepted: list[str] = []
    with platform.client("operator") as operator:
        for runbook in with_params:
            params = runbook["parameters"]
            names = list(params) if isinstance(params, dict) else [p["name"] for p in params]
            for key, value in INJECTIONS.items():
                response = operator.post(
                    f"/api/v1/runbooks/{runbook['id']}/execute",
                    json={"incident_id": incident_id, "parameters": dict.fromkeys(names, value), "note": value},
                )
                if 200 <= response.status_code < 300:
                    accepted.append(f"{runbook['id']}:{key}")
                else:
                    assert_refused_clearly(response, f"runbook {runbook['id']} with {key}")
    if accepted:
        # An accepted request goes to the action service, which proposes (or refuses) it with a dry run; wait until
        # it has, then no step may have run with the value.
        def decided() -> bool:
            with platform.client("viewer") as viewer:
                answer = viewer.get("/api/v1/executions", params={"incident_id": incident_id, "limit": 100})
            items = answer.json()["executions"]
            assert items, "no execution recorded yet"
            # Proposed at most (a dry run, awaiting approval) or refused: no step ran with an injected value.
            ran = [(e.get("runbook_id"), e.get("status"), e.get("steps")) for e in items if e.get("steps")]
            assert not ran, f"steps ran for injected parameters: {ran}"
            return True

        asyncio.run(eventually(decided, timeout=scaled(60.0), what="the action service deciding", interval=1))
    nothing_reached_a_shell(process_watch)


@dataclass
class Proposal:
    """A runbook asked for by a key whose name is markup, with a markup note: it waits in the approvals."""

    requester: str
    note: str
    execution: dict[str, Any]


@pytest.fixture(scope="module")
def proposal(platform: Platform, sent: Sent) -> Iterator[Proposal]:
    requester, note = INJECTIONS["img-onerror"], INJECTIONS["attribute-break"]
    made = aiops("keys", "create", requester, "--role", "operator", env=platform.env)
    assert made.returncode == 0, made.stderr
    incident_id = _injected_incident(platform, sent)["incident"]["id"]
    # Valid parameters (the shop's inventory, its usual replicas): the hostile text is who asks and why.
    parameters = {"service": "inventory", "replicas": 2, "previous_replicas": 2}
    with platform.client(None) as client:
        client.headers["Authorization"] = f"Bearer {made.stdout.strip()}"
        asked = client.post(
            "/api/v1/runbooks/demo-scale-out-slow/execute",
            json={"incident_id": incident_id, "parameters": parameters, "note": note},
        )
    assert asked.status_code == 202, asked.text

    def waiting() -> dict[str, Any]:
        with platform.client("viewer") as viewer:
            items = viewer.get("/api/v1/approvals", params={"incident_id": incident_id, "limit": 100}).json()
        mine = [e for e in items["executions"] if e.get("requested_by") == requester]
        assert mine, f"the request is not waiting for approval yet: {items}"
        return dict(mine[0])

    execution = asyncio.run(eventually(waiting, timeout=scaled(60.0), what="the proposal waiting", interval=1))
    try:
        yield Proposal(requester, note, execution)
    finally:
        # Withdrawn: nothing of it runs, and no execution of the shop's waits while the loop runs.
        with platform.client("approver") as approver:
            done = approver.post(f"/api/v1/approvals/{execution['id']}/reject", json={"comment": "test proposal"})
        assert done.status_code == 202, done.text


def test_hostile_requester_and_note_are_kept_as_text(proposal: Proposal) -> None:
    assert proposal.execution["requested_by"] == proposal.requester
    assert proposal.execution["note"] == proposal.note
    assert proposal.execution["status"] == "pending_approval"


async def _ui_check(
    platform: Platform,
    shown: dict[str, str],
    on_map: dict[str, str],
    incident_ids: list[str],
    proposal: Proposal,
) -> None:
    from playwright.async_api import async_playwright

    dialogs: list[str] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(scaled(30.0) * 1000)

            async def on_dialog(dialog: Any) -> None:
                dialogs.append(f"{dialog.type}: {dialog.message}")
                await dialog.dismiss()

            page.on("dialog", on_dialog)
            await page.goto(platform.gateway_url + "/")
            await page.fill("#api-key", platform.keys["viewer"])
            await page.click("#login-submit")
            await page.wait_for_selector("#incident-rows tr")
            await page.wait_for_function(SHOWS_ANY, arg=list(shown.values()))

            async def assert_page_clean(where: str) -> str:
                text: str = await page.evaluate("document.body.innerText")
                assert await page.evaluate("typeof window.__pwned") == "undefined", f"script ran on {where}"
                injected = "document.querySelectorAll('img[src=\"x\"], svg[onload], script:not([src])').length"
                assert await page.evaluate(injected) == 0, f"injected markup became elements on {where}"
                assert dialogs == [], f"dialogs opened on {where}: {dialogs}"
                return text

            listed = await assert_page_clean("the incidents list")
            assert any(v in listed for v in shown.values()), f"no injected name shown as text in the list: {listed}"
            for incident_id in incident_ids:
                await page.goto(f"{platform.gateway_url}/#/incidents/{incident_id}")
                await page.wait_for_selector("#incident-title")
                await page.wait_for_function(SHOWS_ANY, arg=list(shown.values()))
                detail = await assert_page_clean(f"incident {incident_id}")
                assert any(v in detail for v in shown.values()), f"incident {incident_id} shows no injected text"
            # The incident the hostile key asked a runbook for: its requester and note on the page, as text.
            await page.goto(f"{platform.gateway_url}/#/incidents/{proposal.execution['incident_id']}")
            await page.wait_for_function(SHOWS_ANY, arg=[proposal.requester])
            await assert_page_clean("the proposal's incident")
            await page.goto(platform.gateway_url + "/")
            await page.click("#nav a[data-route='map']")
            await page.wait_for_selector("#service-map")
            await assert_page_clean("the service map")
            for value in on_map.values():
                count = await page.locator("#service-map g.node").evaluate_all(
                    "(nodes, v) => nodes.filter(n => n.dataset.service === v).length", value
                )
                assert count >= 1, f"the service map has no node named {value!r} as text"
            # A service's view: the map links a node in an open incident to that service's open incidents.
            for value in on_map.values():
                await page.goto(f"{platform.gateway_url}/#/incidents?status=open&service={quote(value, safe='')}")
                await page.wait_for_selector("#incident-rows tr")
                await page.wait_for_function(SHOWS_ANY, arg=[value])
                await assert_page_clean(f"the incidents of the service {value!r}")
            await page.goto(platform.gateway_url + "/")
            await page.click("#nav a[data-route='approvals']")
            await page.wait_for_selector(f"#approval-rows tr[data-execution='{proposal.execution['id']}']")
            await page.wait_for_function(SHOWS_ANY, arg=[proposal.requester])
            await assert_page_clean("the approvals")
        finally:
            await browser.close()


@pytest.mark.skipif(not CHROMIUM.exists(), reason="no Chromium at /usr/bin/chromium")
def test_the_ui_shows_injected_names_as_text_and_runs_none(
    platform: Platform, sent: Sent, proposal: Proposal, process_watch: ProcessWatch
) -> None:
    pytest.importorskip("playwright.async_api")
    shown = {k: v for k, v in sent.accepted("alerts").items() if k in MARKUP}
    assert shown, "no markup payload was accepted: nothing to look at"
    incidents = _incidents(platform)
    ids = [i["incident"]["id"] for i in incidents if any(_holds(i, v) for v in shown.values())][:3]
    assert ids, "no incident holds an injected name (test_alert_labels_... waits for them)"
    on_map = {k: v for k, v in sent.accepted("topology").items() if k in MARKUP}
    asyncio.run(_ui_check(platform, shown, on_map, ids, proposal))
    # Everything sent has been through the platform by now (incidents, logs, proposals): still no shell, no file.
    nothing_reached_a_shell(process_watch)
