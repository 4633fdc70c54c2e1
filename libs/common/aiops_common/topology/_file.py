"""The topology file (``aiops topology load``, ``PUT /api/v1/config/topology``): its validation and loading."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiops_common.topology._protocol import AttributeValue, Dependency, Service, TopologyStore

__all__ = ["TopologyFile", "TopologyFileError", "load_topology", "parse_topology_file"]

FILE_SOURCE = "file"


class TopologyFileError(ValueError):
    """A topology file that cannot be loaded; ``problems`` names each bad item, e.g. ``services[2].name``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid topology file: " + "; ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class TopologyFile:
    services: tuple[Service, ...]
    dependencies: tuple[tuple[str, str], ...]


def _name(value: object) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def parse_topology_file(payload: Any) -> TopologyFile:
    """Check a payload ``{"services": [{"name", "tier"?, "zone"?, "team"?, ...}], "dependencies":
    [{"from": caller, "to": callee}]}``; every problem found is reported at once, each naming its item.

    >>> parse_topology_file({"services": [{"name": "api"}, {"name": "db", "tier": "data"}],
    ...                      "dependencies": [{"from": "api", "to": "db"}]}).dependencies
    (('api', 'db'),)
    >>> parse_topology_file({"services": [{"name": "api"}], "dependencies": [{"from": "api", "to": "db"}]})
    Traceback (most recent call last):
    ...
    aiops_common.topology._file.TopologyFileError: invalid topology file: dependencies[0].to: 'db' is not ...
    """
    if not isinstance(payload, Mapping):
        raise TopologyFileError(
            [f"the file must be an object with 'services' and 'dependencies', not {type(payload).__name__}"]
        )
    problems: list[str] = []
    unknown = sorted(set(payload) - {"services", "dependencies"})
    if unknown:
        problems.append(f"unknown top-level keys {unknown} (expected 'services' and 'dependencies')")
    raw_services = payload.get("services", [])
    raw_deps = payload.get("dependencies", [])
    if not isinstance(raw_services, list):
        problems.append("services: must be a list")
        raw_services = []
    if not isinstance(raw_deps, list):
        problems.append("dependencies: must be a list")
        raw_deps = []
    services: dict[str, Service] = {}
    for i, item in enumerate(raw_services):
        where = f"services[{i}]"
        if not isinstance(item, Mapping):
            problems.append(f"{where}: must be an object with a 'name'")
            continue
        name = _name(item.get("name"))
        if name is None:
            problems.append(f"{where}.name: missing or not a non-empty string")
            continue
        where = f"{where} ({name})"
        if name in services:
            problems.append(f"{where}: declared twice")
            continue
        attributes: dict[str, AttributeValue] = {}
        for key, value in item.items():
            if key == "name":
                continue
            if not isinstance(value, str | int | float | bool):
                problems.append(f"{where}.{key}: must be a string, number or boolean, not {type(value).__name__}")
                continue
            attributes[str(key)] = value
        services[name] = Service(name, attributes)
    deps: dict[tuple[str, str], None] = {}
    for i, item in enumerate(raw_deps):
        where = f"dependencies[{i}]"
        if not isinstance(item, Mapping):
            problems.append(f"{where}: must be an object with 'from' and 'to'")
            continue
        ends = []
        for key in ("from", "to"):
            end = _name(item.get(key))
            if end is None:
                problems.append(f"{where}.{key}: missing or not a non-empty string")
            elif end not in services:
                problems.append(f"{where}.{key}: {end!r} is not a service in this file")
            else:
                ends.append(end)
        extra = sorted(set(item) - {"from", "to"})
        if extra:
            problems.append(f"{where}: unknown keys {extra}")
        if len(ends) == 2:
            if ends[0] == ends[1]:
                problems.append(f"{where}: {ends[0]!r} calls itself")
            else:
                deps[ends[0], ends[1]] = None
    if problems:
        raise TopologyFileError(problems)
    return TopologyFile(tuple(services.values()), tuple(deps))


async def load_topology(store: TopologyStore, payload: Any, at: datetime) -> TopologyFile:
    """Validate a topology file and upsert its services and edges (source ``file``, seen ``at``).

    Nothing is written when the file is invalid. What the store already holds and the file does not
    mention is kept: edges seen in traces stay beside the declared ones.
    """
    parsed = parse_topology_file(payload)
    await store.upsert_services(parsed.services)
    await store.upsert_dependencies(Dependency(a, b, frozenset({FILE_SOURCE}), at, at) for a, b in parsed.dependencies)
    return parsed
