"""The stream service as the platform finds it (entry point ``aiops.services``: ``stream``)."""

from __future__ import annotations

from aiops_common.service import ServiceSpec

__all__ = ["SERVICE"]

SERVICE = ServiceSpec("stream", "aiops_stream.settings:StreamSettings", "aiops_stream.worker:install", order=20)
