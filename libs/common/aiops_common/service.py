"""How a service registers itself with the platform: one ``ServiceSpec`` per service, found by entry point."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import faust
    import mode
    import typer

    from aiops_common.settings import CommonSettings

__all__ = ["ENTRY_POINT_GROUP", "ServiceSpec", "discover_services"]

#: Each service package declares ``NAME = "aiops_NAME.service:SERVICE"`` under this group in pyproject.toml.
ENTRY_POINT_GROUP = "aiops.services"


def _load(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """What the ``aiops`` command needs to run one service and offer its commands.

    Parts are ``"module:attr"`` strings, imported only when used, so listing the services (``aiops --help``,
    ``aiops config``) does not import a service's heavy dependencies (torch, for detection).
    """

    name: str
    settings_class: str  # a CommonSettings subclass
    install: str  # a function (faust.App, settings) -> None adding the service's agents
    servers: str | None = None  # a mode.Service class taking (settings, broker_url): the service's own servers
    commands: str | None = None  # a typer.Typer whose commands join the ``aiops`` command line
    order: int = 100  # start order in ``aiops up`` (lower first) and listing order

    def load_settings(self) -> CommonSettings:
        settings: CommonSettings = _load(self.settings_class)()
        return settings

    def install_agents(self, app: faust.App, settings: CommonSettings) -> None:
        _load(self.install)(app, settings)

    def make_servers(self, settings: CommonSettings, broker_url: str) -> mode.Service | None:
        if self.servers is None:
            return None
        service: mode.Service = _load(self.servers)(settings, broker_url)
        return service

    def load_commands(self) -> typer.Typer | None:
        if self.commands is None:
            return None
        commands: typer.Typer = _load(self.commands)
        return commands


def discover_services() -> dict[str, ServiceSpec]:
    """Every installed service's spec, by name, in start order."""
    specs: list[ServiceSpec] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        spec = ep.load()
        if not isinstance(spec, ServiceSpec):
            raise TypeError(f"entry point {ep.name!r} in {ENTRY_POINT_GROUP} is {type(spec).__name__}, not ServiceSpec")
        specs.append(spec)
    return {s.name: s for s in sorted(specs, key=lambda s: (s.order, s.name))}
