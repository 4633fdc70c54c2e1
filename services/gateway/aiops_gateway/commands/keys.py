"""``aiops keys``: create, list and revoke the gateway's API keys, straight in the document store."""

from __future__ import annotations

import getpass
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

if TYPE_CHECKING:
    from aiops_common.documents import DocumentStore

__all__ = ["group"]

T = TypeVar("T")

group = typer.Typer(help="Create, list and revoke API keys of the REST API and the operator UI.", no_args_is_help=True)

_ROLES = ("viewer", "operator", "approver", "admin")


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=code)


def _documents_url() -> str:
    from aiops_common.settings import CommonSettings

    return CommonSettings().documents_url


def _run(use: Callable[[DocumentStore], Awaitable[T]]) -> T:
    from aiops_common.documents import open_document_store
    from aiops_common.store_access import StoreUnreachableError, with_store

    try:
        return with_store(
            open_document_store, _documents_url(), use, "the document store", ("sqlite3", "elasticsearch")
        )
    except StoreUnreachableError as exc:
        raise _fail(str(exc)) from None


@group.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Who or what uses the key (a person, a CI job, a dashboard).")],
    role: Annotated[str, typer.Option(help="viewer, operator, approver or admin.")] = "viewer",
    by: Annotated[str | None, typer.Option(help="Who creates it; default: the current user.")] = None,
) -> None:
    """Create a key and print it once: only its hash is kept."""
    from aiops_gateway.auth.keys import KeyStore
    from aiops_gateway.auth.roles import Role

    if role not in _ROLES:
        raise _fail(f"no role {role!r}; one of {', '.join(_ROLES)}", 2)
    if not name.strip():
        raise _fail("the key needs a name", 2)

    async def use(store: DocumentStore) -> tuple[str, str]:
        key, text = await KeyStore(store).create(name, Role(role), by or getpass.getuser())
        return key.id, text

    key_id, text = _run(use)
    typer.echo(f"created key {key_id} ({role}) for {name.strip()}; it is shown only now:")
    typer.echo(text)


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
        typer.echo("no keys (create one: aiops keys create NAME --role admin)")
        return
    typer.echo(f"{'ID':<14}{'ROLE':<10}{'STATUS':<9}{'CREATED':<27}NAME")
    for k in keys:
        typer.echo(f"{k['id']!s:<14}{k['role']!s:<10}{k['status']!s:<9}{k['created_at']!s:<27}{k['name']}")


@group.command("revoke")
def revoke(key_id: Annotated[str, typer.Argument(help="The key's id, as `aiops keys list` shows it.")]) -> None:
    """Revoke a key: the gateway refuses it within AIOPS_GATEWAY_KEY_CACHE_S seconds."""
    from aiops_gateway.auth.keys import KeyStore

    async def use(store: DocumentStore) -> bool:
        return await KeyStore(store).revoke(key_id) is not None

    if not _run(use):
        raise _fail(f"no key {key_id!r} (`aiops keys list --all` shows them)")
    typer.echo(f"revoked {key_id}")
