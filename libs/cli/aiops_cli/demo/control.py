"""The shop's control API on loopback: faults, and the scale / rollback / restart the runbooks call."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from aiops_cli.demo.faults import Fault, ServiceState, ShopError, ShopState, UnknownServiceError

__all__ = ["DEFAULT_FOR_S", "ControlApi"]

DEFAULT_FOR_S = 300.0

OnFault = Callable[[Fault], Awaitable[None]]
OnChange = Callable[[str, str, ServiceState], Awaitable[None]]


async def _nothing(*_: Any) -> None:
    return None


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class ControlApi:
    """``GET /status``, ``POST|DELETE /faults``, ``DELETE /faults/{id}``, ``POST /services/{name}/scale|rollback|
    restart``, and the same three as ``POST /actions/{scale|rollback|restart}`` with the service in the JSON body
    (a runbook's URL is a literal: the service it acts on travels in the body as a checked parameter)."""

    def __init__(
        self,
        state: ShopState,
        clock: Callable[[], float] = time.time,
        on_fault: OnFault = _nothing,
        on_change: OnChange = _nothing,
        warm: Callable[[], bool] = lambda: False,
    ) -> None:
        self.state = state
        self.warm = warm
        self.clock = clock
        self.on_fault = on_fault
        self.on_change = on_change
        self.app = web.Application()
        self.app.add_routes(
            [
                web.get("/status", self._status),
                web.post("/faults", self._inject),
                web.delete("/faults", self._clear_all),
                web.delete("/faults/{id}", self._clear_one),
                web.post("/services/{name}/{action}", self._service_action),
                web.post("/actions/{action}", self._body_action),
            ]
        )
        self._runner: web.AppRunner | None = None

    async def start(self, host: str, port: int) -> str:
        """Serve on ``host:port`` (port 0: a free one); the base URL."""
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        bound = server.sockets[0].getsockname()[1] if server is not None and server.sockets else port  # type: ignore[attr-defined]
        return f"http://{host}:{bound}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _json(self, request: web.Request) -> dict[str, Any]:
        if not request.can_read_body:
            return {}
        try:
            body = json.loads(await request.read() or b"{}")
        except (ValueError, UnicodeDecodeError):
            raise ShopError("the body is not JSON") from None
        if not isinstance(body, dict):
            raise ShopError("the body must be a JSON object")
        return body

    async def _status(self, _: web.Request) -> web.Response:
        # "warm": detection judges the shop's series now (a fault injected before that goes unnoticed).
        return web.json_response({**self.state.to_json(self.clock()), "warm": self.warm()})

    async def _inject(self, request: web.Request) -> web.Response:
        try:
            body = await self._json(request)
            service, kind = body.get("service"), body.get("kind")
            if not isinstance(service, str) or not isinstance(kind, str):
                raise ShopError('"service" and "kind" are required strings')
            fault = self.state.inject(service, kind, body.get("for_s", DEFAULT_FOR_S), self.clock())
        except ShopError as exc:
            return _error(400, str(exc))
        await self.on_fault(fault)
        return web.json_response(fault.to_json(), status=201)

    async def _clear_all(self, _: web.Request) -> web.Response:
        return web.json_response({"cleared": self.state.clear()})

    async def _clear_one(self, request: web.Request) -> web.Response:
        if self.state.clear(request.match_info["id"]) == 0:
            return _error(404, f"no fault {request.match_info['id']!r}")
        return web.json_response({"cleared": 1})

    async def _service_action(self, request: web.Request) -> web.Response:
        try:
            body = await self._json(request)
        except ShopError as exc:
            return _error(400, str(exc))
        return await self._act(request.match_info["name"], request.match_info["action"], body)

    async def _body_action(self, request: web.Request) -> web.Response:
        try:
            body = await self._json(request)
        except ShopError as exc:
            return _error(400, str(exc))
        service = body.get("service")
        if not isinstance(service, str):
            return _error(400, '"service" is a required string')
        return await self._act(service, request.match_info["action"], body)

    async def _act(self, service: str, action: str, body: dict[str, Any]) -> web.Response:
        try:
            if action == "scale":
                state = self.state.scale(service, body.get("replicas"))  # type: ignore[arg-type]
            elif action == "rollback":
                state = self.state.rollback(service)
            elif action == "restart":
                state = self.state.restart(service)
            else:
                return _error(404, f"no action {action!r}; one of scale, rollback, restart")
        except UnknownServiceError as exc:
            return _error(404, str(exc))
        except ShopError as exc:
            return _error(400, str(exc))
        await self.on_change(service, action, state)
        healthy = self.state.effect(service, self.clock()).healthy
        return web.json_response({"service": service, **state.to_json(healthy)})
