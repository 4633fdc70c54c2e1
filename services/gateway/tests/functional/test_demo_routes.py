"""The demo routes through a real gateway to a control server on loopback that keeps the demo's contract and records
what it receives: status, faults injected and cleared (audited), refusals of the gateway and of the demo passed
back, roles, no demo configured, and a demo that cannot be reached."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiops_common.broker.addresses import free_port
from aiops_gateway.auth import Role
from aiops_gateway.testing import RunningGateway, start_gateway

pytestmark = pytest.mark.functional

KINDS = frozenset({"latency", "errors", "cpu", "bad-deploy"})
BODY = web.RequestKey("body", object)


@dataclass
class ControlServer:
    """The demo shop's control API as the demo serves it (``GET /status``, ``POST``/``DELETE /faults``, scale,
    rollback, restart), in memory; ``received`` is every call as (method, path, JSON body or None). Also used by
    the UI's test (``test_ui.py``)."""

    url: str = ""
    services: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {
            "frontend": {"replicas": 2, "version": "2.3.1", "healthy": True},
            "checkout": {"replicas": 2, "version": "1.9.0", "healthy": True},
            "payment": {"replicas": 2, "version": "1.4.0", "healthy": True},
            "database": {"replicas": 1, "version": "15.4", "healthy": True},
            "inventory": {"replicas": 1, "version": "0.8.2", "healthy": False},
        }
    )
    faults: list[dict[str, Any]] = field(default_factory=list)
    received: list[tuple[str, str, Any]] = field(default_factory=list)
    refusal: str = ""  # when set, every fault is refused (400) with it, as the demo refuses a bad one
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def posted_faults(self) -> list[Any]:
        return [body for method, path, body in self.received if (method, path) == ("POST", "/faults")]

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else None
        self.received.append((request.method, request.path, body))
        request[BODY] = body
        return await handler(request)

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response({"services": self.services, "faults": self.faults})

    async def _inject(self, request: web.Request) -> web.Response:
        body = request[BODY] if isinstance(request[BODY], dict) else {}
        service, kind, for_s = body.get("service"), body.get("kind"), body.get("for_s", 300)
        if self.refusal:
            return web.json_response({"error": self.refusal}, status=400)
        if service not in self.services:
            return web.json_response({"error": f"unknown service {service!r}"}, status=400)
        if kind not in KINDS:
            return web.json_response({"error": f"unknown kind {kind!r}"}, status=400)
        if not isinstance(for_s, int) or not 10 <= for_s <= 3600:
            return web.json_response({"error": "for_s must be 10..3600"}, status=400)
        now = datetime.now(UTC)
        fault = {
            "id": f"fault-{next(self._ids)}",
            "service": service,
            "kind": kind,
            "started_at": now.isoformat(),
            "until": (now + timedelta(seconds=for_s)).isoformat(),
        }
        self.faults.append(fault)
        return web.json_response(fault, status=201)

    async def _clear(self, request: web.Request) -> web.Response:
        cleared, self.faults = len(self.faults), []
        return web.json_response({"cleared": cleared})

    async def _clear_one(self, request: web.Request) -> web.Response:
        kept = [f for f in self.faults if f["id"] != request.match_info["id"]]
        if len(kept) == len(self.faults):
            return web.json_response({"error": "no such fault"}, status=404)
        self.faults = kept
        return web.json_response({"cleared": 1})

    async def _service_action(self, request: web.Request) -> web.Response:
        name, action = request.match_info["name"], request.match_info["action"]
        state = self.services.get(name)
        if state is None or action not in ("scale", "rollback", "restart"):
            return web.json_response({"error": f"unknown service {name!r}"}, status=404)
        if action == "scale":
            state["replicas"] = int((request[BODY] or {}).get("replicas", state["replicas"]))
        state["healthy"] = True
        return web.json_response({name: state})

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[ControlServer]:
        app = web.Application(middlewares=[self._record])
        app.router.add_get("/status", self._status)
        app.router.add_post("/faults", self._inject)
        app.router.add_delete("/faults", self._clear)
        app.router.add_delete("/faults/{id}", self._clear_one)
        app.router.add_post("/services/{name}/{action}", self._service_action)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"
        try:
            yield self
        finally:
            await runner.cleanup()


@contextlib.asynccontextmanager
async def gateway_with_demo(
    tmp_path: Path, broker_url: str, topic_prefix: str, demo_url: str
) -> AsyncIterator[RunningGateway]:
    servers, running = await start_gateway(tmp_path, broker_url, topic_prefix, gateway_demo_url=demo_url)
    try:
        yield running
    finally:
        await servers.stop()


async def test_the_panel_reads_the_shop_injects_and_clears_faults(
    tmp_path: Path, broker_url: str, topic_prefix: str
) -> None:
    async with (
        ControlServer().running() as control,
        gateway_with_demo(tmp_path, broker_url, topic_prefix, control.url) as running,
        await running.client(Role.VIEWER) as viewer,
        await running.client(Role.OPERATOR) as operator,
        await running.client(None) as anonymous,
    ):
        status = await viewer.get("/api/v1/demo")
        assert status.status_code == 200, status.text
        body = status.json()
        assert body["enabled"] is True
        assert body["services"]["payment"] == {"replicas": 2, "version": "1.4.0", "healthy": True}
        assert body["services"]["inventory"]["healthy"] is False
        assert body["faults"] == []
        assert control.received[-1][:2] == ("GET", "/status")

        injected = await operator.post(
            "/api/v1/demo/faults", json={"service": "payment", "kind": "latency", "for_s": 60}
        )
        assert injected.status_code == 201, injected.text
        fault = injected.json()
        assert (fault["service"], fault["kind"], fault["id"]) == ("payment", "latency", "fault-1")
        assert fault["until"] > fault["started_at"]
        assert control.posted_faults() == [{"service": "payment", "kind": "latency", "for_s": 60}]
        shown = (await viewer.get("/api/v1/demo")).json()["faults"]
        assert [(f["id"], f["service"], f["kind"]) for f in shown] == [("fault-1", "payment", "latency")]

        # The demo's own refusal (a service the gateway cannot know of) comes back with its status and reason.
        refused = await operator.post("/api/v1/demo/faults", json={"service": "shipping", "kind": "cpu"})
        assert refused.status_code == 400
        assert "unknown service 'shipping'" in refused.json()["error"]
        assert refused.json()["request_id"] == refused.headers["x-request-id"]
        assert control.posted_faults()[-1] == {"service": "shipping", "kind": "cpu", "for_s": 300}

        # The gateway's own checks: nothing reaches the demo.
        sent_before = len(control.received)
        for bad, words in (
            ({"service": "payment", "kind": "meteor"}, "kind"),
            ({"service": "payment", "kind": "cpu", "for_s": 5}, "for_s"),
            ({"service": "payment", "kind": "cpu", "for_s": 3601}, "for_s"),
            ({"service": "<img src=x>", "kind": "cpu"}, "service"),
            ({"kind": "cpu"}, "service"),
            ({"service": "payment", "kind": "cpu", "extra": 1}, "extra"),
        ):
            answer = await operator.post("/api/v1/demo/faults", json=bad)
            assert answer.status_code == 422, (bad, answer.text)
            assert words in answer.json()["error"], (bad, answer.text)
        assert len(control.received) == sent_before

        # Roles: a viewer reads but injects nothing; no credentials, nothing at all.
        for method in ("POST", "DELETE"):
            payload = {"service": "payment", "kind": "cpu"}
            as_viewer = await viewer.request(method, "/api/v1/demo/faults", json=payload)
            assert as_viewer.status_code == 403, as_viewer.text
            as_nobody = await anonymous.request(method, "/api/v1/demo/faults", json=payload)
            assert as_nobody.status_code == 401, as_nobody.text
        assert (await anonymous.get("/api/v1/demo")).status_code == 401
        assert len(control.received) == sent_before

        cleared = await operator.delete("/api/v1/demo/faults")
        assert cleared.status_code == 200, cleared.text
        assert cleared.json() == {"cleared": 1}
        assert control.received[-1][:2] == ("DELETE", "/faults")
        assert (await viewer.get("/api/v1/demo")).json()["faults"] == []

        # Both changes are in the audit log, by whom and with what.
        entries = (await viewer.get("/api/v1/audit", params={"subject_id": "payment"})).json()["entries"]
        assert [(e["action"], e["actor"]) for e in entries] == [("demo.fault", "test-operator")]
        assert entries[0]["details"]["fault_id"] == "fault-1"
        assert entries[0]["details"]["for_s"] == 60
        entries = (await viewer.get("/api/v1/audit", params={"action": "demo.clear"})).json()["entries"]
        assert [(e["actor"], e["details"]) for e in entries] == [("test-operator", {"cleared": 1})]


async def test_without_a_demo_the_panel_is_off_and_mutations_are_404(
    tmp_path: Path, broker_url: str, topic_prefix: str
) -> None:
    async with gateway_with_demo(tmp_path, broker_url, topic_prefix, "") as running:
        async with await running.client(Role.VIEWER) as viewer:
            answer = await viewer.get("/api/v1/demo")
            assert answer.status_code == 200
            assert answer.json() == {"enabled": False}
        async with await running.client(Role.OPERATOR) as operator:
            injected = await operator.post("/api/v1/demo/faults", json={"service": "payment", "kind": "cpu"})
            cleared = await operator.delete("/api/v1/demo/faults")
        for answer in (injected, cleared):
            assert answer.status_code == 404, answer.text
            assert "AIOPS_GATEWAY_DEMO_URL" in answer.json()["error"]


async def test_a_demo_that_cannot_be_reached_is_a_503(tmp_path: Path, broker_url: str, topic_prefix: str) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    async with (
        gateway_with_demo(tmp_path, broker_url, topic_prefix, nowhere) as running,
        await running.client(Role.OPERATOR) as operator,
    ):
        answers = [
            await operator.get("/api/v1/demo"),
            await operator.post("/api/v1/demo/faults", json={"service": "payment", "kind": "errors"}),
            await operator.delete("/api/v1/demo/faults"),
        ]
        for answer in answers:
            assert answer.status_code == 503, answer.text
            assert answer.headers["retry-after"] == "5"
            assert "cannot be reached" in answer.json()["error"]
        # Nothing was changed, so nothing is audited.
        entries = (await operator.get("/api/v1/audit", params={"subject_id": "payment"})).json()["entries"]
        assert entries == []
