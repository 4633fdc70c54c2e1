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
    demo_control_host: str = "127.0.0.1"
    """``aiops demo``: the shop's control API address (faults, scale, rollback, restart; the UI's demo panel)."""
    demo_control_port: int = 4390
    demo_backfill_s: float = 1800.0
    """``aiops demo``: seconds of shop history posted before the shop goes live, so detection starts warm."""
    demo_seed: int = 0
    """``aiops demo``: seed of the shop's simulated traffic."""
