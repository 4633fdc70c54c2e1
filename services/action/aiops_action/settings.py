"""Settings of the action service (``AIOPS_ACTION_*``)."""

from __future__ import annotations

from pathlib import Path

from aiops_common.settings import CommonSettings

__all__ = ["ActionSettings"]


class ActionSettings(CommonSettings):
    action_runbooks_dir: Path | None = None
    """Folder of runbook YAML files (every ``*.yaml``/``*.yml`` below it); unset: the runbooks shipped in
    ``examples/runbooks``-like form inside the package (``aiops_action/runbooks/shipped``)."""
