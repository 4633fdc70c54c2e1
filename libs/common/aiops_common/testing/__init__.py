"""Real external servers (Prometheus, Alertmanager, node exporter) on free loopback ports."""

from __future__ import annotations

from aiops_common.testing.servers import AlertmanagerServer, ExternalServer, NodeExporter, PrometheusServer

__all__ = ["AlertmanagerServer", "ExternalServer", "NodeExporter", "PrometheusServer"]
