"""RCA's own ``aiops`` commands: ``aiops rca …``.

Store clients are imported inside the commands, so ``aiops --help`` stays fast.
"""

from __future__ import annotations

import typer

__all__ = ["commands"]

commands = typer.Typer()
"""Joined to the ``aiops`` command line by the RCA service's spec (``aiops_rca.service``)."""
