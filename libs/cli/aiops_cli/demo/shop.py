"""The simulated shop live: each service's spans, logs and gauges through the OpenTelemetry SDK to ingestion."""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Sequence

from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from aiops_cli.demo.faults import SERVICES, ShopState
from aiops_cli.demo.traffic import SpanSpec, daily_load, requests_in, simulate_request

__all__ = ["CPU_METRIC", "METRICS_INTERVAL_S", "REPLICAS_METRIC", "Shop", "cpu_reading", "resource_of"]

CPU_METRIC = "shop.cpu.utilization"
REPLICAS_METRIC = "shop.replicas"
_EXPORT_S = 1.0
METRICS_INTERVAL_S = 5.0
"""Gauges every 5 s: two samples in every 10 s window, so an export's jitter never leaves a window empty (the
silence detector would call it absent)."""


def resource_of(service: str) -> Resource:
    """Only ``service.name``: the SDK's defaults (sdk version, a fresh instance id per process) would become labels
    and start new series at every run, away from the history the demo backfilled."""
    return Resource({"service.name": service})


def cpu_reading(state: ShopState, service: str, at: float, rng: random.Random) -> float:
    """The cpu gauge a service reports: its load's share plus a little measurement noise (a flat line would make
    every tiny wobble an anomaly)."""
    return max(0.0, min(100.0, state.effect(service, at, daily_load(at)).cpu_percent + rng.gauss(0.0, 1.5)))


class _Service:
    """One shop service's tracer, logger and meter, each exporting to ingestion over OTLP/HTTP."""

    def __init__(self, name: str, base_url: str, state: ShopState, metrics_interval_s: float) -> None:
        resource = resource_of(name)
        self.tracer_provider = TracerProvider(resource=resource)
        self.tracer_provider.add_span_processor(
            BatchSpanProcessor(
                OTLPSpanExporter(endpoint=f"{base_url}/v1/traces", timeout=10),
                schedule_delay_millis=_EXPORT_S * 1000,
            )
        )
        self.tracer = self.tracer_provider.get_tracer("aiops.demo.shop")
        self.logger_provider = LoggerProvider(resource=resource)
        self.logger_provider.add_log_record_processor(
            BatchLogRecordProcessor(
                OTLPLogExporter(endpoint=f"{base_url}/v1/logs", timeout=10), schedule_delay_millis=_EXPORT_S * 1000
            )
        )
        self.logger = self.logger_provider.get_logger("aiops.demo.shop")
        reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=f"{base_url}/v1/metrics", timeout=10),
            export_interval_millis=int(metrics_interval_s * 1000),
        )
        self.meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
        meter = self.meter_provider.get_meter("aiops.demo.shop")

        noise = random.Random(name)

        def cpu(_: CallbackOptions) -> Iterable[Observation]:
            now = time.time()
            yield Observation(cpu_reading(state, name, now, noise))

        def replicas(_: CallbackOptions) -> Iterable[Observation]:
            yield Observation(state.services[name].replicas)

        meter.create_observable_gauge(CPU_METRIC, callbacks=[cpu], unit="%", description="CPU use of the service")
        meter.create_observable_gauge(REPLICAS_METRIC, callbacks=[replicas], unit="1", description="Replicas")

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.logger_provider.shutdown()
        self.meter_provider.shutdown()


class Shop:
    """The five services; :meth:`tick` emits the requests of the last second as spans and logs."""

    def __init__(
        self, ingest_url: str, state: ShopState, seed: int | None = None, metrics_interval_s: float = METRICS_INTERVAL_S
    ) -> None:
        self.state = state
        self.rng = random.Random(seed)
        self.services = {name: _Service(name, ingest_url.rstrip("/"), state, metrics_interval_s) for name in SERVICES}
        self.requests = 0

    def tick(self, now: float, seconds: float = 1.0) -> int:
        """Emit the requests that ended in ``(now - seconds, now]``; how many."""
        count = requests_in(now - seconds, seconds, self.rng)
        ends = sorted(now - seconds + self.rng.random() * seconds for _ in range(count))
        for end in ends:
            self.emit(simulate_request(self.state, end, self.rng))
        self.requests += count
        return count

    def emit(self, specs: Sequence[SpanSpec]) -> None:
        """One request's spans through each service's own tracer (a child inside its caller's trace), and a log
        line for each failure (at the span, so the logs carry its trace) plus an access line for the front end."""
        spans: list[trace.Span] = []
        for spec in specs:
            parent = trace.set_span_in_context(spans[spec.parent]) if spec.parent >= 0 else None
            span = self.services[spec.service].tracer.start_span(
                spec.operation, context=parent, kind=SpanKind.SERVER, start_time=spec.start_ns
            )
            if spec.error:
                span.set_status(Status(StatusCode.ERROR, spec.message))
            spans.append(span)
        for spec, span in zip(specs, spans, strict=True):
            service = self.services[spec.service]
            context = trace.set_span_in_context(span)
            if spec.error:
                service.logger.emit(
                    timestamp=spec.end_ns,
                    context=context,
                    severity_number=SeverityNumber.ERROR,
                    severity_text="ERROR",
                    body=spec.message,
                )
            elif spec.parent < 0 and self.rng.random() < 0.1:
                service.logger.emit(
                    timestamp=spec.end_ns,
                    context=context,
                    severity_number=SeverityNumber.INFO,
                    severity_text="INFO",
                    body=f"{spec.operation} 200 in {(spec.end_ns - spec.start_ns) / 1e6:.0f} ms",
                )
            span.end(end_time=spec.end_ns)

    def shutdown(self) -> None:
        for service in self.services.values():
            service.shutdown()
