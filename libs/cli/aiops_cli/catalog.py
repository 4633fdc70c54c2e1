"""The services the CLI can run: where each one's settings, agents and servers live."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import faust
import mode
from aiops_common.settings import CommonSettings

__all__ = ["SERVICES", "ServiceEntry"]


def _load(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True, slots=True)
class ServiceEntry:
    name: str
    settings_class: str  # "module:Class", a CommonSettings subclass
    install: str  # "module:function" taking (faust.App, settings)
    servers: str | None = None  # "module:Class", a mode.Service taking (settings, broker_url)

    def load_settings(self) -> CommonSettings:
        settings: CommonSettings = _load(self.settings_class)()
        return settings

    def install_agents(self, app: faust.App, settings: CommonSettings) -> None:
        installer: Callable[[faust.App, CommonSettings], None] = _load(self.install)
        installer(app, settings)

    def make_servers(self, settings: CommonSettings, broker_url: str) -> mode.Service | None:
        if self.servers is None:
            return None
        service: mode.Service = _load(self.servers)(settings, broker_url)
        return service


SERVICES: dict[str, ServiceEntry] = {
    "ingestion": ServiceEntry(
        "ingestion",
        "aiops_ingestion.settings:IngestionSettings",
        "aiops_ingestion.worker:install",
        "aiops_ingestion.servers:IngestionServers",
    ),
    "stream": ServiceEntry("stream", "aiops_stream.settings:StreamSettings", "aiops_stream.worker:install"),
    "detection": ServiceEntry(
        "detection", "aiops_detection.service_settings:DetectionServiceSettings", "aiops_detection.worker:install"
    ),
}
