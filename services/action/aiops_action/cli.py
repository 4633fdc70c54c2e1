"""The action service's commands on the ``aiops`` command line: ``aiops runbooks``, ``aiops audit``, ``aiops approve``,
``aiops reject`` and ``aiops executions``."""

from __future__ import annotations

import typer

from aiops_action.commands import approvals, audit, runbooks

__all__ = ["commands"]

commands = typer.Typer()
"""Joined to the ``aiops`` command line by the action service's spec (``aiops_action.service``)."""
commands.add_typer(runbooks.group, name="runbooks", no_args_is_help=True)
commands.add_typer(audit.group, name="audit", no_args_is_help=True)
commands.command("approve")(approvals.approve)
commands.command("reject")(approvals.reject)
commands.add_typer(approvals.executions, name="executions", no_args_is_help=True)
