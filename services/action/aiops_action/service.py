"""The action service as the platform finds it (entry point ``aiops.services``: ``action``)."""

from __future__ import annotations

from aiops_common.service import ServiceSpec

__all__ = ["SERVICE"]

SERVICE = ServiceSpec(
    name="action",
    settings_class="aiops_action.settings:ActionSettings",
    install="aiops_action.worker:install",
    commands="aiops_action.cli:commands",
    order=70,
)
