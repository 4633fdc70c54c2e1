"""``aiops topology``: load and read the topology store."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from aiops_correlation.commands.incidents import parse_since

if TYPE_CHECKING:
    from aiops_common.topology import Change, Dependency, Service, TopologyFile, TopologyStore

__all__ = ["group"]

group = typer.Typer(help="Load and read the service topology (services, call edges, changes).", no_args_is_help=True)

T = TypeVar("T")


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=code)


def _with_store(use: Callable[[TopologyStore], Awaitable[T]]) -> T:
    """Open AIOPS_TOPOLOGY_URL's store, run ``use`` on it, close it; a store that cannot be reached is one line."""
    from aiops_common.store_access import StoreUnreachableError, with_store
    from aiops_common.topology import open_topology_store

    from aiops_correlation.settings import CorrelationSettings

    try:
        # SQLite's and the Bolt driver's own errors mean the store could not be reached or read.
        url = CorrelationSettings().topology_url
        return with_store(open_topology_store, url, use, "topology store", {"sqlite3", "neo4j"})
    except StoreUnreachableError as exc:
        raise _fail(str(exc)) from None


def _read_file(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise _fail(f"cannot read {path}: {exc.strerror or exc}", 2) from None
    except UnicodeDecodeError:
        raise _fail(f"{path} is not UTF-8 text", 2) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(f"{path} is not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}", 2) from None


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _attributes(attributes: Any) -> str:
    return " ".join(f"{key}={value}" for key, value in sorted(attributes.items()))


@group.command("load")
def load(
    file: Annotated[Path, typer.Argument(help='JSON: {"services": [{"name", "tier"?, ...}], "dependencies": [...]}')],
    replace: Annotated[
        bool,
        typer.Option(
            "--replace", help="Forget everything the store holds first (edges seen in traces and changes too)."
        ),
    ] = False,
) -> None:
    """Load a topology file into the store (AIOPS_TOPOLOGY_URL); what the file does not mention is kept.

    Services gain or update the attributes the file gives; each dependency becomes a call edge with source
    ``file``, beside the edges seen in traces. An invalid file changes nothing and exits 2.
    """
    from aiops_common.topology import TopologyFileError, load_topology, parse_topology_file

    payload = _read_file(file)
    try:
        parse_topology_file(payload)  # checked before --replace clears anything
    except TopologyFileError as exc:
        raise _fail(f"{file}: {exc}", 2) from None

    async def write(store: TopologyStore) -> TopologyFile:
        if replace:
            await store.clear()
        return await load_topology(store, payload, datetime.now(UTC))

    loaded = _with_store(write)
    edges = "dependency" if len(loaded.dependencies) == 1 else "dependencies"
    services = "service" if len(loaded.services) == 1 else "services"
    how = "replaced the store's topology with" if replace else "loaded"
    typer.echo(f"{how} {len(loaded.services)} {services} and {len(loaded.dependencies)} {edges} from {file}")
    width = max((len(s.name) for s in loaded.services), default=0)
    for service in loaded.services:
        typer.echo(f"  {service.name:<{width}}  {_attributes(service.attributes)}".rstrip())
    for caller, callee in loaded.dependencies:
        typer.echo(f"  {caller} -> {callee}")


def _service_json(service: Service) -> dict[str, Any]:
    return {"name": service.name, "attributes": dict(service.attributes)}


def _dependency_json(dep: Dependency) -> dict[str, Any]:
    return {
        "from": dep.caller,
        "to": dep.callee,
        "sources": sorted(dep.sources),
        "first_seen": _iso(dep.first_seen),
        "last_seen": _iso(dep.last_seen),
    }


@group.command("show")
def show(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object: services and dependencies.")] = False,
) -> None:
    """Show the services with their attributes and the call edges with their sources and first/last seen."""

    async def read(store: TopologyStore) -> tuple[list[Service], list[Dependency]]:
        return await store.services(), await store.dependencies()

    services, dependencies = _with_store(read)
    if as_json:
        payload = {
            "services": [_service_json(s) for s in services],
            "dependencies": [_dependency_json(d) for d in dependencies],
        }
        typer.echo(json.dumps(payload, indent=2))
        return
    if not services:
        typer.echo("the topology store is empty; load a file with `aiops topology load FILE`")
        return
    width = max(len(s.name) for s in services)
    typer.echo(f"services ({len(services)}):")
    for service in services:
        typer.echo(f"  {service.name:<{width}}  {_attributes(service.attributes)}".rstrip())
    typer.echo(f"dependencies ({len(dependencies)}):")
    if dependencies:
        ends = [f"{d.caller} -> {d.callee}" for d in dependencies]
        pad = max(len(e) for e in ends)
        for end, dep in zip(ends, dependencies, strict=True):
            sources = ",".join(sorted(dep.sources))
            typer.echo(f"  {end:<{pad}}  {sources:<12} first {_iso(dep.first_seen)}  last {_iso(dep.last_seen)}")


def _change_json(change: Change) -> dict[str, Any]:
    return {
        "id": change.id,
        "service": change.service,
        "at": _iso(change.at),
        "kind": change.kind,
        "description": change.description,
        "attributes": dict(change.attributes),
    }


@group.command("changes")
def changes(
    since: Annotated[str, typer.Option(help="Since: 30m, 6h, 7d, or an ISO-8601 time.")] = "1h",
    service: Annotated[list[str] | None, typer.Option(help="Only this service's changes (repeatable).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array of the changes, oldest first.")] = False,
) -> None:
    """List deployments and other changes recorded in the topology store, oldest first."""
    now = datetime.now(UTC)
    try:
        start = parse_since(since, now)
    except typer.BadParameter as exc:
        raise _fail(f"--since: {exc}", 2) from None

    async def read(store: TopologyStore) -> list[Change]:
        # No upper bound: a change stamped by a clock ahead of this one is still listed.
        return await store.changes(start, datetime.max.replace(tzinfo=UTC), service or None)

    found = _with_store(read)
    if as_json:
        typer.echo(json.dumps([_change_json(c) for c in found], indent=2))
        return
    if not found:
        typer.echo(f"no changes since {_iso(start)}" + (f" for {', '.join(service)}" if service else ""))
        return
    for change in found:
        what = change.description or change.attributes.get("version", "")
        typer.echo(f"{_iso(change.at)}  {change.service}  {change.kind}  {what}  ({change.id})")
