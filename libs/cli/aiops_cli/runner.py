"""Start services' agents and servers in one Faust worker, with or without the embedded broker."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faust
import mode
from aiokafka.errors import KafkaError
from aiops_common.broker import EmbeddedBroker, ensure_topics
from aiops_common.extras import requires_extra
from aiops_common.faust_app import create_app
from aiops_common.heap import HeapTrimmer, configure_heap
from aiops_common.observability import configure_logging
from aiops_common.run_state import RunState
from aiops_common.service import Endpoint, ServiceStartError, discover_services
from aiops_common.settings import CommonSettings
from aiops_common.worker_http import WorkerHttp

from aiops_cli.settings import PlatformSettings

__all__ = ["run_services"]


def _local_ingestion(settings: CommonSettings, ingestion_url: str | None) -> CommonSettings:
    """In one process with ingestion, a service that forwards to ingestion (the gateway's ingestion routes) does so
    to this ingestion, wherever ``AIOPS_INGEST_HTTP_PORT`` put it, unless its own setting says otherwise."""
    field = "gateway_ingest_url"
    if ingestion_url is None or field not in type(settings).model_fields or field in settings.model_fields_set:
        return settings
    return settings.model_copy(update={field: ingestion_url})


def run_services(names: Sequence[str], settings: PlatformSettings, embedded: bool, app_name: str) -> None:
    """Run ``names`` until SIGINT/SIGTERM; start (and stop) the embedded broker when ``embedded``."""
    configure_logging(settings.log_level, settings.log_format)
    configure_heap(settings.heap_mmap_threshold_bytes, settings.heap_arena_max)  # before any thread starts
    specs = [discover_services()[name] for name in names]
    for spec in specs:
        spec.resolve()  # a missing extra is one line before anything starts
    broker: EmbeddedBroker | None = None
    if embedded:
        broker = EmbeddedBroker(settings.broker_port, log_path=Path(settings.data_dir) / "broker.log")
        broker_url = broker.start()
    else:
        broker_url = settings.require_broker_url()
    try:
        try:
            asyncio.run(ensure_topics(broker_url, settings.topic_prefix))
        except KafkaError as exc:
            raise ServiceStartError(
                f"cannot reach the broker at {broker_url} ({exc}); check AIOPS_BROKER_URL"
            ) from None
        app = create_app(app_name, settings, broker_url)
        services: list[mode.Service] = []
        urls: dict[str, str] = {}
        for spec in specs:
            # The agents learn the broker from their settings (publishers, readers of a topic's history): the
            # embedded one's address is known only now.
            svc_settings = spec.load_settings().model_copy(update={"broker_url": broker_url})
            svc_settings = _local_ingestion(svc_settings, urls.get(Endpoint.TELEMETRY_HTTP))
            spec.install_agents(app, svc_settings)
            servers = spec.make_servers(svc_settings, broker_url)
            if servers is not None:
                services.append(servers)
            urls.update(svc_settings.advertised_urls())
        # A process of servers only (the gateway alone) has no topic to consume, and Faust refuses to start a
        # consumer with none: it then runs without the Faust app.
        consumes = bool(app.agents)
        # Probes first: /health answers while agents still recover their tables.
        probes = WorkerHttp(app, settings, broker_url, consumes=consumes)
        services.insert(0, probes)
        services.append(HeapTrimmer(settings.heap_trim_interval_s))
        http_url, grpc_address = urls.get(Endpoint.TELEMETRY_HTTP), urls.get(Endpoint.TELEMETRY_GRPC)
        if settings.host_metrics and http_url is not None:
            services.append(_host_telemetry(f"{http_url}/v1/metrics", settings))
        RunState(
            broker_url,
            embedded,
            settings.topic_prefix,
            list(names),
            http_url,
            grpc_address,
            os.getpid(),
            probes.url,
            urls.get(Endpoint.GATEWAY_HTTP),
        ).write(settings.data_dir)
        # The platform's own JSON log handler stays in place (Faust would install its own).
        options: dict[str, Any] = {"loglevel": settings.log_level, "redirect_stdouts": False, "override_logging": False}
        worker = faust.Worker(app, *services, **options) if consumes else mode.Worker(*services, **options)
        try:
            worker.execute_from_commandline()
        finally:
            RunState.clear(settings.data_dir)
    finally:
        if broker is not None:
            broker.stop()


def _host_telemetry(endpoint: str, settings: PlatformSettings) -> mode.Service:
    with requires_extra("host-metrics", "reporting this host's metrics (turn it off with AIOPS_HOST_METRICS=false)"):
        from aiops_cli.host_telemetry import HostTelemetry

    return HostTelemetry(endpoint, settings.host_metrics_service, settings.host_metrics_interval_s)
