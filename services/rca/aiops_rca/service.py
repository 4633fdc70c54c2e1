"""The RCA service as the platform finds it (entry point ``aiops.services``: ``rca``)."""

from __future__ import annotations

from aiops_common.service import ServiceSpec

__all__ = ["SERVICE"]

SERVICE = ServiceSpec(
    name="rca",
    settings_class="aiops_rca.settings:RcaSettings",
    install="aiops_rca.worker:install",
    commands="aiops_rca.cli:commands",
    order=50,
)
