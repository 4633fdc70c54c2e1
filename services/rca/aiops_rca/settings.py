"""Settings of the RCA service (``AIOPS_RCA_*``)."""

from __future__ import annotations

from aiops_common.settings import CommonSettings

__all__ = ["RcaSettings"]


class RcaSettings(CommonSettings):
    rca_hops: int = 2
    """The affected subgraph: services within this many call edges up- and downstream of the incident's."""
