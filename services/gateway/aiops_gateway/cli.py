"""The gateway's commands on the ``aiops`` command line: ``aiops keys``."""

from __future__ import annotations

import typer

from aiops_gateway.commands.keys import group as keys

__all__ = ["commands"]

commands = typer.Typer()
commands.add_typer(keys, name="keys")
