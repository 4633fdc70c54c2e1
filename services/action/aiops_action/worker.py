"""The action service's worker: its agents (matcher, orchestrator, executor, notifier) join here as they land."""

from __future__ import annotations

import faust

from aiops_action.settings import ActionSettings

__all__ = ["install"]


def install(app: faust.App, settings: ActionSettings) -> None:
    """No agents yet: the runbook knowledge base, executors, notifications and audit log come first."""
