"""Every worker's probe server: ``/health``, ``/ready`` and ``/metrics`` (with consumer lag) on one small HTTP port."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from typing import Any

import faust
import mode
import structlog
from aiohttp import web
from faust.types import TP
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from aiops_common.broker.addresses import broker_accepts_connections
from aiops_common.service import ServiceStartError
from aiops_common.settings import CommonSettings

__all__ = ["ConsumerLagCollector", "WorkerHttp", "WorkerHttpPortError"]

log = structlog.get_logger(__name__)


class WorkerHttpPortError(ServiceStartError):
    """The probe server's port is taken; the message is one line for the user."""


def _committed(consumer: Any, tp: TP) -> int:
    """The offset the group resumes from, as this worker last committed it; 0 before any commit.

    Faust keeps it without a public accessor. Before the first commit the whole log counts
    as not yet processed, as ``kafka-consumer-groups`` would have it from the log's start.
    """
    committed: int | None = getattr(consumer, "_committed_offset", {}).get(tp)
    return committed or 0


class ConsumerLagCollector(Collector):
    """``aiops_consumer_lag{topic,partition}``: highwater minus committed offset of each assigned partition.

    Read at scrape time from the Faust consumer's own bookkeeping, so a scrape costs no
    broker round trip; a partition whose highwater the consumer has not fetched yet is left out.
    Table changelog partitions are left out: they are read only to recover a table.
    """

    def __init__(self, app: faust.App) -> None:
        self.app = app
        self.active = False  # set once the consumer exists and has an assignment

    def collect(self) -> Iterator[GaugeMetricFamily]:
        lag = GaugeMetricFamily(
            "aiops_consumer_lag",
            "Messages not yet committed by this worker, per partition",
            labels=["topic", "partition"],
        )
        if self.active:
            consumer = self.app.consumer
            # A table's changelog is only read to recover it, never committed: its "lag" would mean nothing.
            changelogs = self.app.tables.changelog_topics
            for tp in sorted(tp for tp in consumer.assignment() if tp.topic not in changelogs):
                # A rebalance may revoke the partition between listing and reading it; it is then simply left out.
                with contextlib.suppress(Exception):
                    highwater = consumer.highwater(tp)
                    committed = _committed(consumer, tp)
                    if highwater is not None:
                        lag.add_metric([tp.topic, str(tp.partition)], max(highwater - committed, 0))
        yield lag


class WorkerHttp(mode.Service):
    """The probe server of one worker process, started with the Faust worker by the runner.

    ``/health``: the process and its event loop answer. ``/ready``: the worker has taken
    its partitions (a rebalance completed, none in progress) and the broker accepts a
    connection. ``/metrics``: prometheus_client's default registry, where every agent's
    counters (see :mod:`aiops_common.agent_loop`) and the consumer lag are.

    aiohttp rather than uvicorn: it is already a Faust dependency, and its runner starts
    and stops on the worker's own event loop with no signal handling of its own.
    The socket is bound in the constructor, so a taken port fails before the worker
    starts and a free port (``worker_http_port=0``) is known for the run state.
    """

    def __init__(
        self, app: faust.App, settings: CommonSettings, broker_url: str, consumes: bool = True, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.app = app
        self.consumes = consumes  # False: the process runs only servers (the gateway), no consumer to wait for
        self.broker_url = broker_url
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((settings.worker_http_host, settings.worker_http_port))
        except OSError as exc:
            self.sock.close()
            raise WorkerHttpPortError(
                f"worker probe port {settings.worker_http_host}:{settings.worker_http_port} is not available "
                f"({exc.strerror}; set AIOPS_WORKER_HTTP_PORT, 0 picks a free one)"
            ) from None
        host, port = self.sock.getsockname()[:2]
        shown = "127.0.0.1" if host == "0.0.0.0" else host  # a wildcard is reached on loopback
        self.url = f"http://{shown}:{port}"
        self.lag = ConsumerLagCollector(app)
        self.assigned = not consumes
        self._broker_ok: tuple[float, bool] = (0.0, False)
        self._runner: web.AppRunner | None = None
        app.on_rebalance_complete.connect(self._on_rebalance_complete)  # type: ignore[arg-type]  # mode's stub wants a keyword-only signal

    async def _on_rebalance_complete(self, sender: Any, **kwargs: Any) -> None:
        self.assigned = True
        self.lag.active = True

    async def on_start(self) -> None:
        REGISTRY.register(self.lag)
        web_app = web.Application()
        web_app.add_routes(
            [web.get("/health", self._health), web.get("/ready", self._ready), web.get("/metrics", self._metrics)]
        )
        self._runner = web.AppRunner(web_app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.SockSite(self._runner, self.sock, shutdown_timeout=2.0).start()
        log.info("worker probes listening", url=self.url, app=self.app.conf.id)

    async def on_stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        with contextlib.suppress(KeyError):
            REGISTRY.unregister(self.lag)
        self.sock.close()

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "app": self.app.conf.id, "pid": os.getpid()})

    async def _ready(self, request: web.Request) -> web.Response:
        if not self.consumes:
            if not await self._broker_reachable():
                return web.json_response({"status": "not ready", "reason": "broker unreachable"}, status=503)
            return web.json_response({"status": "ready", "assigned_partitions": 0})
        if not self.assigned or self.app.rebalancing:
            return web.json_response({"status": "not ready", "reason": "partitions not assigned yet"}, status=503)
        if not await self._broker_reachable():
            return web.json_response({"status": "not ready", "reason": "broker unreachable"}, status=503)
        assigned = len(self.app.consumer.assignment())
        return web.json_response({"status": "ready", "assigned_partitions": assigned})

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _broker_reachable(self) -> bool:
        """Whether a bootstrap server accepts a TCP connection; remembered 2 s, so probes cost the broker little."""
        checked_at, ok = self._broker_ok
        if time.monotonic() - checked_at < 2.0:
            return ok
        ok = await broker_accepts_connections(self.broker_url)
        self._broker_ok = (time.monotonic(), ok)
        return ok
