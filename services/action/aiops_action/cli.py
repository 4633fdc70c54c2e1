"""The action service's commands on the ``aiops`` command line: ``aiops runbooks``, ``aiops audit``."""

from __future__ import annotations

import typer

from aiops_action.commands import audit, runbooks

__all__ = ["commands"]

commands = typer.Typer()
"""Joined to the ``aiops`` command line by the action service's spec (``aiops_action.service``)."""
commands.add_typer(runbooks.group, name="runbooks", no_args_is_help=True)
commands.add_typer(audit.group, name="audit", no_args_is_help=True)
