"""Report this host's own metrics through the platform's OTLP endpoint, so data flows at once.

CPU, memory, disk I/O and network come from OpenTelemetry's system-metrics
instrumentation. That instrumentation has no filesystem usage, which disk-full
forecasts need, so one observable gauge adds it from psutil.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterable

import mode
import psutil
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.instrumentation.system_metrics import SystemMetricsInstrumentor
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

__all__ = ["HostTelemetry"]

_SYSTEM_METRICS: dict[str, list[str] | None] = {
    "system.cpu.utilization": ["idle", "user", "system", "iowait", "irq", "steal"],
    "system.memory.usage": ["used", "free", "buffered", "cached"],
    "system.memory.utilization": ["used", "free", "buffered", "cached"],
    "system.swap.utilization": ["used", "free"],
    "system.disk.io": ["read", "write"],
    "system.disk.operations": ["read", "write"],
    "system.disk.time": ["read", "write"],
    "system.network.io": ["transmit", "receive"],
    "system.network.errors": ["transmit", "receive"],
    "system.network.dropped.packets": ["transmit", "receive"],
    "process.cpu.utilization": ["user", "system"],
    "process.memory.usage": None,
}


def _filesystem_utilization(options: CallbackOptions) -> Iterable[Observation]:
    for part in psutil.disk_partitions(all=False):
        try:
            usage = psutil.disk_usage(part.mountpoint)
        except OSError:
            continue
        attrs = {"system.device": part.device, "system.filesystem.mountpoint": part.mountpoint}
        yield Observation(usage.percent / 100.0, attrs)


class HostTelemetry(mode.Service):
    """Exports host metrics over OTLP/HTTP every ``interval_s`` to ``endpoint``."""

    def __init__(self, endpoint: str, service_name: str, interval_s: float, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]  # mode.Service takes loosely typed options
        self.endpoint = endpoint
        self.service_name = service_name
        self.interval_s = interval_s
        self._provider: MeterProvider | None = None
        self._instrumentor = SystemMetricsInstrumentor(config=_SYSTEM_METRICS)

    async def on_started(self) -> None:
        reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=self.endpoint, timeout=5),
            export_interval_millis=int(self.interval_s * 1000),
        )
        host = socket.gethostname()
        # A stable instance id: the SDK's default is a fresh UUID per process, which would start
        # new series at every restart.
        resource = Resource.create({"service.name": self.service_name, "host.name": host, "service.instance.id": host})
        self._provider = MeterProvider(resource=resource, metric_readers=[reader])
        self._instrumentor.instrument(meter_provider=self._provider)
        meter = self._provider.get_meter("aiops.host")
        meter.create_observable_gauge(
            "system.filesystem.utilization",
            callbacks=[_filesystem_utilization],
            unit="1",
            description="Fraction of each mounted filesystem in use",
        )

    async def on_stop(self) -> None:
        if self._provider is None:
            return
        self._instrumentor.uninstrument()
        provider, self._provider = self._provider, None
        # shutdown() flushes with a blocking HTTP call to our own server: keep the loop free.
        await asyncio.get_running_loop().run_in_executor(None, lambda: provider.shutdown(timeout_millis=3000))
