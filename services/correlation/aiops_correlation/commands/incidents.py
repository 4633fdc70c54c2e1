"""``aiops incidents``: list and show incidents from the document store."""

from __future__ import annotations

import typer

__all__ = ["group"]

group = typer.Typer(help="List and show correlated incidents.", no_args_is_help=True)
