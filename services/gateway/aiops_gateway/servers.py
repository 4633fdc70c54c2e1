"""Run the gateway's HTTP server (uvicorn) as one service of a worker process."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
from collections.abc import Iterator

import mode
import structlog
import uvicorn
from aiops_common.broker.addresses import port_is_free
from aiops_common.service import ServiceStartError

from aiops_gateway.app import create_app
from aiops_gateway.context import Gateway
from aiops_gateway.settings import GatewaySettings

__all__ = ["GatewayServers"]

log = structlog.get_logger(__name__)

# uvicorn's C parser (the gateway extra installs it) costs a fraction of the pure-Python h11 it falls back to.
_HTTP_PARSER = "httptools" if importlib.util.find_spec("httptools") is not None else "h11"


class _EmbeddedUvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: the worker owns SIGINT/SIGTERM and stops us in order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class GatewayServers(mode.Service):
    """The REST API and the UI on ``AIOPS_GATEWAY_HOST:PORT``."""

    def __init__(self, settings: GatewaySettings, broker_url: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]  # mode.Service takes loosely typed options
        if settings.gateway_port and not port_is_free(settings.gateway_port, settings.gateway_host):
            raise ServiceStartError(
                f"gateway port {settings.gateway_host}:{settings.gateway_port} is already in use"
                " (set AIOPS_GATEWAY_PORT)"
            )
        self.settings = settings
        self.gateway = Gateway.open(settings, broker_url)
        self._http: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def on_start(self) -> None:
        await self.gateway.start()
        config = uvicorn.Config(
            create_app(self.gateway),
            host=self.settings.gateway_host,
            port=self.settings.gateway_port,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_keep_alive=30,
            http=_HTTP_PARSER,
            proxy_headers=True,
            forwarded_allow_ips=self.settings.gateway_trusted_proxies,
        )
        self._http = _EmbeddedUvicorn(config)
        self._task = asyncio.create_task(self._http.serve())
        while not self._http.started:
            if self._task.done():
                await self.gateway.close()
                raise ServiceStartError(f"the gateway did not start on port {self.settings.gateway_port}")
            await asyncio.sleep(0.02)
        log.info("gateway listening", url=self.settings.url)

    async def on_stop(self) -> None:
        # Live event streams never end by themselves: closing the feed ends them, so uvicorn stops at once.
        await self.gateway.live.stop()
        if self._http is not None and self._task is not None:
            self._http.should_exit = True
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._task, 5.0)
        await self.gateway.close()
