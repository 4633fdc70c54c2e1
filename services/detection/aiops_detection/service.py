"""The detection service as the platform finds it (entry point ``aiops.services``: ``detection``)."""

from __future__ import annotations

from aiops_common.service import ServiceSpec

__all__ = ["SERVICE"]

SERVICE = ServiceSpec(
    name="detection",
    settings_class="aiops_detection.service_settings:DetectionServiceSettings",
    install="aiops_detection.worker:install",
    commands="aiops_detection.cli:commands",
    order=30,
)
