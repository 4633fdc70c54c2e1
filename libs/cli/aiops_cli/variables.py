"""Every ``AIOPS_*`` variable the platform reads, and the settings class that declares it (``aiops config``, and
the deployment files' checks: a variable nothing declares is a typo that configures nothing)."""

from __future__ import annotations

from aiops_common.service import discover_services
from aiops_common.settings import CommonSettings

from aiops_cli.settings import PlatformSettings

__all__ = ["declared_variables", "settings_types"]


def settings_types() -> list[tuple[str, type[CommonSettings]]]:
    """(owner, settings class): ``platform`` first, then every service in start order."""
    services = sorted(discover_services().values(), key=lambda s: (s.order, s.name))
    return [("platform", PlatformSettings), *((s.name, s.settings_type()) for s in services)]


def declared_variables() -> dict[str, str]:
    """``AIOPS_<FIELD>`` -> the first owner declaring it (common settings belong to ``platform``)."""
    found: dict[str, str] = {}
    for owner, settings in settings_types():
        for name in settings.model_fields:
            found.setdefault(f"AIOPS_{name.upper()}", owner)
    return found
