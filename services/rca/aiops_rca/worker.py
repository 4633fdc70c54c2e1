"""The RCA service's agents, installed on a Faust app by ``aiops up`` / ``aiops worker rca``."""

from __future__ import annotations

import faust

from aiops_rca.settings import RcaSettings

__all__ = ["install"]


def install(app: faust.App, settings: RcaSettings) -> None:
    if not isinstance(settings, RcaSettings):
        settings = RcaSettings(**settings.model_dump())
