"""The correlation service as the platform finds it (entry point ``aiops.services``: ``correlation``)."""

from __future__ import annotations

from aiops_common.service import ServiceSpec

__all__ = ["SERVICE"]

SERVICE = ServiceSpec(
    name="correlation",
    settings_class="aiops_correlation.settings:CorrelationSettings",
    install="aiops_correlation.worker:install",
    commands="aiops_correlation.cli:commands",
    order=40,
)
