"""``aiops keys``: create, list and revoke the gateway's API keys, straight in the document store."""

from __future__ import annotations

import getpass
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

if TYPE_CHECKING:
    from aiops_common.documents import DocumentStore

    from aiops_gateway.auth.keys import ApiKey
    from aiops_gateway.settings import GatewaySettings

__all__ = ["group"]

T = TypeVar("T")

group = typer.Typer(help="Create, list and revoke API keys of the REST API and the operator UI.", no_args_is_help=True)

# Spelled out here so `aiops --help` need not import the gateway (FastAPI) to list them.
_ROLES = ("viewer", "operator", "approver", "admin")


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=code)


def _settings() -> GatewaySettings:
    from aiops_gateway.settings import GatewaySettings

    return GatewaySettings()


def _run(use: Callable[[DocumentStore], Awaitable[T]]) -> T:
    from aiops_common.documents import VersionConflictError, open_document_store
    from aiops_common.store_access import StoreUnreachableError, with_store

    try:
        return with_store(
            open_document_store, _settings().documents_url, use, "the document store", ("sqlite3", "elasticsearch")
        )
    except StoreUnreachableError as exc:
        raise _fail(str(exc)) from None
    except VersionConflictError:
        raise _fail("the key changed while this ran (another revoke?); run the command again") from None


def _current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container user without a name
        return "unknown"


@group.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Who or what uses the key (a person, a CI job, a dashboard).")],
    role: Annotated[str, typer.Option(help="viewer, operator, approver or admin.")] = "viewer",
    by: Annotated[str | None, typer.Option(help="Who creates it; default: the current user.")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help='One JSON object: {"id", "name", "role", ..., "key"} (for scripts).')
    ] = False,
) -> None:
    """Create a key and print it once: only its hash is kept.

    The first key of a new installation: `aiops keys create NAME --role admin`.
    """
    from aiops_gateway.auth.keys import KeyStore, name_problem
    from aiops_gateway.auth.roles import Role

    role = role.strip().lower()
    if role not in _ROLES:
        raise _fail(f"no role {role!r}; one of {', '.join(_ROLES)}", 2)
    problem = name_problem(name)
    if problem:
        raise _fail(problem, 2)

    async def use(store: DocumentStore) -> tuple[ApiKey, str]:
        return await KeyStore(store).create(name, Role(role), by or _current_user())

    key, text = _run(use)
    if as_json:
        typer.echo(json.dumps({**key.public(), "key": text}, indent=2))
        return
    typer.echo(f"created key {key.id} ({key.role.value}) for {key.name}; it is shown only now:", err=True)
    typer.echo(text)
    typer.echo("use it as `Authorization: Bearer <key>` or `X-API-Key: <key>`, or paste it into the UI", err=True)


@group.command("list")
def list_keys(
    all_keys: Annotated[bool, typer.Option("--all", help="Revoked keys too.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array.")] = False,
) -> None:
    """List keys (never their secrets)."""
    from aiops_gateway.auth.keys import KeyStore

    async def use(store: DocumentStore) -> list[dict[str, object]]:
        return [k.public() for k in await KeyStore(store).list(include_revoked=all_keys)]

    keys = _run(use)
    if as_json:
        typer.echo(json.dumps(keys, indent=2))
        return
    if not keys:
        hint = "" if all_keys else " active"
        typer.echo(f"no{hint} keys (create one: aiops keys create NAME --role admin)")
        return
    typer.echo(f"{'ID':<14}{'ROLE':<10}{'STATUS':<9}{'CREATED':<27}{'BY':<16}NAME")
    for k in keys:
        created = str(k["created_at"])[:19].replace("T", " ")
        typer.echo(
            f"{k['id']!s:<14}{k['role']!s:<10}{k['status']!s:<9}{created:<27}{str(k['created_by'])[:15]:<16}{k['name']}"
        )


@group.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id, as `aiops keys list` shows it (or the key itself).")],
) -> None:
    """Revoke a key: the gateway refuses it within AIOPS_GATEWAY_KEY_CACHE_S seconds."""
    from aiops_gateway.auth.keys import KeyStore, is_key_id, parse_key

    parsed = parse_key(key_id.strip())
    wanted = parsed[0] if parsed else key_id.strip()
    if not is_key_id(wanted):
        raise _fail(f"{key_id!r} is not a key id (hex digits, as `aiops keys list` shows them)", 2)

    async def use(store: DocumentStore) -> tuple[ApiKey | None, ApiKey | None]:
        keys = KeyStore(store)
        before = await keys.get(wanted)
        if before is None or before.status == "revoked":
            return before, before
        return before, await keys.revoke(wanted)

    before, after = _run(use)
    if before is None or after is None:
        raise _fail(f"no key {wanted!r} (`aiops keys list --all` shows them)")
    if before.status == "revoked":
        revoked_at = after.revoked_at.isoformat() if after.revoked_at else "earlier"
        typer.echo(f"{wanted} ({after.name}) was already revoked ({revoked_at})")
        return
    delay = _settings().gateway_key_cache_s
    typer.echo(f"revoked {wanted} ({after.name}, {after.role.value}); gateways refuse it within {delay:g} s")
