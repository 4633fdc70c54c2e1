"""Static service metadata (team, tier, zone...) from a YAML file, added to every record of a service."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import yaml

from aiops_ingestion.normalize._labels import label_name_problem
from aiops_ingestion.settings import IngestionSettings

__all__ = ["Enricher", "EnrichmentConfigError"]

_NO_LABELS: Mapping[str, str] = MappingProxyType({})


class EnrichmentConfigError(ValueError):
    """The metadata file is missing or not a mapping of service -> {label: value}; raised at startup."""


@dataclass(frozen=True, slots=True)
class Enricher:
    """Adds configured labels to the series, logs and spans of a service, never replacing a sender's label.

    The file maps a service name to its labels::

        checkout:
          team: payments
          tier: "1"
          zone: eu-west-1a
    """

    services: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: IngestionSettings) -> Enricher:
        """The enricher for ``AIOPS_INGEST_METADATA_FILE``; one that adds nothing when it is unset."""
        if settings.ingest_metadata_file is None:
            return cls()
        return cls.from_file(settings.ingest_metadata_file)

    @classmethod
    def from_file(cls, path: Path) -> Enricher:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise EnrichmentConfigError(f"cannot read service metadata file {str(path)!r}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise EnrichmentConfigError(f"service metadata file {str(path)!r} is not UTF-8 text") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise EnrichmentConfigError(f"service metadata file {str(path)!r} is not valid YAML: {exc}") from None
        return cls.from_mapping({} if data is None else data, source=str(path))

    @classmethod
    def from_mapping(cls, data: object, source: str = "service metadata") -> Enricher:
        """Validate ``{service: {label: scalar}}``; values become strings (``true``, ``1``, ``0.5``)."""
        if not isinstance(data, Mapping):
            raise EnrichmentConfigError(f"{source}: expected a mapping of service name to labels")
        services: dict[str, Mapping[str, str]] = {}
        for service, labels in data.items():
            if not isinstance(service, str) or not service:
                raise EnrichmentConfigError(f"{source}: service name {service!r} is not a non-empty string")
            if not isinstance(labels, Mapping):
                raise EnrichmentConfigError(f"{source}: {service}: expected a mapping of label name to value")
            checked: dict[str, str] = {}
            for name, value in labels.items():
                problem = label_name_problem(name, 256) if isinstance(name, str) else "label names must be strings"
                if problem:
                    raise EnrichmentConfigError(f"{source}: {service}: {problem}")
                if isinstance(value, bool):
                    checked[name] = "true" if value else "false"
                elif isinstance(value, str | int | float):
                    checked[name] = str(value)
                else:
                    raise EnrichmentConfigError(f"{source}: {service}.{name}: value must be a string or number")
            if checked:
                services[service] = MappingProxyType(checked)
        return cls(MappingProxyType(services))

    def __bool__(self) -> bool:
        return bool(self.services)

    def labels_for(self, service: str) -> Mapping[str, str]:
        return self.services.get(service, _NO_LABELS)

    def enrich(self, service: str, labels: dict[str, str]) -> None:
        """Add ``service``'s configured labels to ``labels`` where the sender did not set them."""
        for name, value in self.services.get(service, _NO_LABELS).items():
            labels.setdefault(name, value)
