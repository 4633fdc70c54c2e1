"""The ingestion service as the platform finds it (entry point ``aiops.services``: ``ingestion``)."""

from __future__ import annotations

from aiops_common.service import ServiceSpec

__all__ = ["SERVICE"]

SERVICE = ServiceSpec(
    "ingestion",
    "aiops_ingestion.settings:IngestionSettings",
    "aiops_ingestion.worker:install",
    servers="aiops_ingestion.servers:IngestionServers",
    order=10,
)
