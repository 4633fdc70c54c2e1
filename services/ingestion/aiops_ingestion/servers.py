"""Run the ingestion HTTP and gRPC servers as one service of a worker process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import grpc
import mode
import structlog
import uvicorn
from aiops_common.broker import Publisher
from aiops_common.broker.addresses import port_is_free
from aiops_common.service import ServiceStartError

from aiops_ingestion.grpc_api import create_grpc_server
from aiops_ingestion.http_api import create_http_app
from aiops_ingestion.normalize import SeriesCache
from aiops_ingestion.settings import IngestionSettings

__all__ = ["IngestionServers", "PortInUseError"]

log = structlog.get_logger(__name__)


class _EmbeddedUvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: the worker owns SIGINT/SIGTERM and stops us in order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class PortInUseError(ServiceStartError):
    """A listening port the service needs is taken; the message is one line for the user."""


class IngestionServers(mode.Service):
    """OTLP/HTTP + remote write + webhooks (uvicorn) and OTLP/gRPC, sharing one acknowledged publisher."""

    def __init__(self, settings: IngestionSettings, broker_url: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]  # mode.Service takes loosely typed options
        self.check_ports(settings)  # fail before the worker starts, as a one-line error
        self.settings = settings
        self.publisher = Publisher(
            broker_url, settings.topic_prefix, acks=settings.producer_acks, timeout_s=settings.publish_timeout_s
        )
        # One cache of known series for both servers: a series sent over HTTP and gRPC is kept once.
        self.series_cache = SeriesCache(settings.ingest_series_cache_size)
        self._http: uvicorn.Server | None = None
        self._http_task: asyncio.Task[None] | None = None
        self._grpc: grpc.aio.Server | None = None

    @staticmethod
    def check_ports(settings: IngestionSettings) -> None:
        for name, host, port in (
            ("HTTP", settings.ingest_http_host, settings.ingest_http_port),
            ("OTLP gRPC", settings.ingest_grpc_host, settings.ingest_grpc_port),
        ):
            if port and not port_is_free(port, host):
                env = "AIOPS_INGEST_HTTP_PORT" if name == "HTTP" else "AIOPS_INGEST_GRPC_PORT"
                raise PortInUseError(f"ingestion {name} port {host}:{port} is already in use (set {env})")

    async def on_start(self) -> None:
        with contextlib.suppress(Exception):
            # The broker may be down at start; requests then get 503 and the publisher reconnects.
            await self.publisher.start()
        # gRPC first: once HTTP answers (``/ready``), every receiver is listening.
        self._grpc = create_grpc_server(self.settings, self.publisher, self.series_cache)
        await self._grpc.start()
        app = create_http_app(self.settings, self.publisher, self.series_cache)
        config = uvicorn.Config(
            app,
            host=self.settings.ingest_http_host,
            port=self.settings.ingest_http_port,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_keep_alive=30,
            # The parser its limits and refusals are tested with; httptools (installed with the gateway) would be
            # picked by "auto" wherever both services are installed.
            http="h11",
        )
        self._http = _EmbeddedUvicorn(config)
        self._http_task = asyncio.create_task(self._http.serve())
        while not self._http.started:
            if self._http_task.done():
                await self._grpc.stop(grace=None)
                raise PortInUseError(
                    f"the ingestion HTTP server did not start on port {self.settings.ingest_http_port}"
                )
            await asyncio.sleep(0.02)
        log.info(
            "ingestion listening",
            http=f"http://{self.settings.ingest_http_host}:{self.settings.ingest_http_port}",
            grpc=f"{self.settings.ingest_grpc_host}:{self.settings.ingest_grpc_port}",
        )

    async def on_stop(self) -> None:
        if self._grpc is not None:
            await self._grpc.stop(grace=2.0)
        if self._http is not None and self._http_task is not None:
            self._http.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._http_task, 5.0)
        await self.publisher.stop()
