"""``aiops topology``: load and read the topology store."""

from __future__ import annotations

import typer

__all__ = ["group"]

group = typer.Typer(help="Load and read the service topology (services, call edges, changes).", no_args_is_help=True)
