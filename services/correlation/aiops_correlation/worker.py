"""The correlation service's agents, installed on a Faust app by ``aiops up`` / ``aiops worker correlation``."""

from __future__ import annotations

import faust

from aiops_correlation.settings import CorrelationSettings

__all__ = ["install"]


def install(app: faust.App, settings: CorrelationSettings) -> None:
    if not isinstance(settings, CorrelationSettings):
        settings = CorrelationSettings(**settings.model_dump())
