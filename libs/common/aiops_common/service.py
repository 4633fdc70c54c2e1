"""How a service registers itself with the platform: one ``ServiceSpec`` per service, found by entry point."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from enum import StrEnum
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from aiops_common.extras import requires_extra

if TYPE_CHECKING:
    import faust
    import mode
    import typer

    from aiops_common.settings import CommonSettings

__all__ = ["ENTRY_POINT_GROUP", "Endpoint", "ServiceSpec", "ServiceStartError", "discover_services"]

#: Each service package declares ``NAME = "aiops_NAME.service:SERVICE"`` under this group in pyproject.toml.
ENTRY_POINT_GROUP = "aiops.services"


class Endpoint(StrEnum):
    """What a listening address is for, so the ``aiops`` command finds it without knowing which service has it.

    A service's settings advertise theirs (:meth:`CommonSettings.advertised_urls`); ``aiops up`` reports its
    own host metrics to ``TELEMETRY_HTTP`` and writes both into the run state for ``aiops status``/``replay``.
    """

    TELEMETRY_HTTP = "telemetry_http"  # base URL taking OTLP/HTTP (under /v1), remote write and the JSON APIs
    TELEMETRY_GRPC = "telemetry_grpc"  # host:port of OTLP/gRPC
    GATEWAY_HTTP = "gateway_http"  # base URL of the REST API (under /api/v1) and the operator UI


class ServiceStartError(RuntimeError):
    """A service cannot start (a port it needs is taken, say); the message is one line for the user."""


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """What the ``aiops`` command needs to run one service and offer its commands.

    Parts are ``"module:attr"`` strings, imported only when used, so listing the services (``aiops --help``,
    ``aiops config``) does not import a service's heavy dependencies (torch, for detection). A part whose
    third-party dependencies are not installed raises :class:`~aiops_common.extras.MissingExtraError`
    naming the service's extra.
    """

    name: str
    settings_class: str  # a CommonSettings subclass
    install: str  # a function (faust.App, settings) -> None adding the service's agents
    servers: str | None = None  # a mode.Service class taking (settings, broker_url): the service's own servers
    commands: str | None = None  # a typer.Typer whose commands join the ``aiops`` command line
    order: int = 100  # start order in ``aiops up`` (lower first) and listing order
    extra: str | None = None  # the extra installing the service's dependencies; None: the service's name

    def _load(self, path: str) -> Any:
        module, _, attr = path.partition(":")
        with requires_extra(self.extra or self.name, f"the {self.name} service"):
            return getattr(importlib.import_module(module), attr)

    def resolve(self) -> None:
        """Import every part now, so that a missing extra is reported before a broker or server starts."""
        for path in (self.settings_class, self.install, self.servers, self.commands):
            if path is not None:
                self._load(path)

    def settings_type(self) -> type[CommonSettings]:
        """The service's settings class (its fields are its ``AIOPS_*`` variables), not instantiated."""
        found: type[CommonSettings] = self._load(self.settings_class)
        return found

    def load_settings(self) -> CommonSettings:
        return self.settings_type()()

    def install_agents(self, app: faust.App, settings: CommonSettings) -> None:
        self._load(self.install)(app, settings)

    def make_servers(self, settings: CommonSettings, broker_url: str) -> mode.Service | None:
        if self.servers is None:
            return None
        service: mode.Service = self._load(self.servers)(settings, broker_url)
        return service

    def load_commands(self) -> typer.Typer | None:
        if self.commands is None:
            return None
        commands: typer.Typer = self._load(self.commands)
        return commands


def discover_services() -> dict[str, ServiceSpec]:
    """Every installed service's spec, by name, in start order."""
    specs: list[ServiceSpec] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        spec = ep.load()
        if not isinstance(spec, ServiceSpec):
            raise TypeError(f"entry point {ep.name!r} in {ENTRY_POINT_GROUP} is {type(spec).__name__}, not ServiceSpec")
        if spec.name != ep.name:
            raise ValueError(f"entry point {ep.name!r} in {ENTRY_POINT_GROUP} names a service called {spec.name!r}")
        specs.append(spec)
    return {s.name: s for s in sorted(specs, key=lambda s: (s.order, s.name))}
