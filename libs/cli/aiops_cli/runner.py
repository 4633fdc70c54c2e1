"""Start services' agents and servers in one Faust worker, with or without the embedded broker."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path

import faust
import mode
from aiops_common.broker import EmbeddedBroker, ensure_topics
from aiops_common.faust_app import create_app
from aiops_common.observability import configure_logging
from aiops_common.worker_http import WorkerHttp
from aiops_ingestion.settings import IngestionSettings

from aiops_cli.catalog import SERVICES
from aiops_cli.host_telemetry import HostTelemetry
from aiops_cli.settings import PlatformSettings
from aiops_cli.state import RunState

__all__ = ["run_services"]


def run_services(names: Sequence[str], settings: PlatformSettings, embedded: bool, app_name: str) -> None:
    """Run ``names`` until SIGINT/SIGTERM; start (and stop) the embedded broker when ``embedded``."""
    configure_logging(settings.log_level, settings.log_format)
    broker: EmbeddedBroker | None = None
    if embedded:
        broker = EmbeddedBroker(settings.broker_port, log_path=Path(settings.data_dir) / "broker.log")
        broker_url = broker.start()
    else:
        broker_url = settings.require_broker_url()
    try:
        asyncio.run(ensure_topics(broker_url, settings.topic_prefix))
        app = create_app(app_name, settings, broker_url)
        # Probes first: /health answers while agents still recover their tables.
        probes = WorkerHttp(app, settings, broker_url)
        services: list[mode.Service] = [probes]
        http_url = grpc_address = None
        for name in names:
            entry = SERVICES[name]
            svc_settings = entry.load_settings()
            entry.install_agents(app, svc_settings)
            servers = entry.make_servers(svc_settings, broker_url)
            if servers is not None:
                services.append(servers)
            if isinstance(svc_settings, IngestionSettings):
                http_url, grpc_address = svc_settings.http_url, svc_settings.grpc_address
        if settings.host_metrics and http_url is not None:
            services.append(
                HostTelemetry(f"{http_url}/v1/metrics", settings.host_metrics_service, settings.host_metrics_interval_s)
            )
        RunState(
            broker_url, embedded, settings.topic_prefix, list(names), http_url, grpc_address, os.getpid(), probes.url
        ).write(settings.data_dir)
        # The platform's own JSON log handler stays in place (Faust would install its own).
        worker = faust.Worker(
            app, *services, loglevel=settings.log_level, redirect_stdouts=False, override_logging=False
        )
        try:
            worker.execute_from_commandline()
        finally:
            RunState.clear(settings.data_dir)
    finally:
        if broker is not None:
            broker.stop()
