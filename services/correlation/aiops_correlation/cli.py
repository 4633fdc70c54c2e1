"""Correlation's own ``aiops`` commands: ``aiops topology …`` and ``aiops incidents …``.

Store clients are imported inside the commands, so ``aiops --help`` stays fast.
"""

from __future__ import annotations

import typer

from aiops_correlation.commands import incidents, topology

__all__ = ["commands"]

commands = typer.Typer()
"""Joined to the ``aiops`` command line by the correlation service's spec (``aiops_correlation.service``)."""
commands.add_typer(topology.group, name="topology")
commands.add_typer(incidents.group, name="incidents")
