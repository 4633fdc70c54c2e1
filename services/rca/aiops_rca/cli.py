"""RCA's own ``aiops`` commands: ``aiops rca analyze/show/confirm/reject``.

Store clients and the engine are imported inside the commands, so ``aiops --help`` stays fast.
"""

from __future__ import annotations

import typer

from aiops_rca.commands import analyze, results

__all__ = ["commands"]

commands = typer.Typer()
"""Joined to the ``aiops`` command line by the RCA service's spec (``aiops_rca.service``)."""

group = typer.Typer(help="Root causes of incidents: rank them from files, show stored ones, confirm or reject them.")
group.command("analyze")(analyze.analyze)
group.command("show")(results.show)
group.command("confirm")(results.confirm)
group.command("reject")(results.reject)
commands.add_typer(group, name="rca", no_args_is_help=True)
