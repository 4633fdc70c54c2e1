"""Settings of the all-in-one runner (``aiops up``)."""

from __future__ import annotations

from aiops_common.settings import CommonSettings

__all__ = ["PlatformSettings"]


class PlatformSettings(CommonSettings):
    host_metrics: bool = True
    """Report this host's CPU, memory, disk and network through the platform's own OTLP endpoint."""
    host_metrics_interval_s: float = 10.0
    host_metrics_service: str = "aiops-host"
    """``service.name`` of the host's own metrics."""
