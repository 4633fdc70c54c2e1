"""The action service's commands on the ``aiops`` command line."""

from __future__ import annotations

import typer

__all__ = ["commands"]

commands = typer.Typer()
"""Joined to the ``aiops`` command line by the action service's spec (``aiops_action.service``); each group is added
by its module in ``commands/``."""
