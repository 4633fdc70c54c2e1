"""Real external servers (Prometheus, Alertmanager, node exporter, osmem-server) on free loopback ports."""

from __future__ import annotations

from aiops_common.testing.opensearch import OsmemServer
from aiops_common.testing.servers import AlertmanagerServer, ExternalServer, NodeExporter, PrometheusServer

__all__ = ["AlertmanagerServer", "ExternalServer", "NodeExporter", "OsmemServer", "PrometheusServer"]
