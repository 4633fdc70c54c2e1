"""``python -m aiops_cli``: the same as the ``aiops`` command."""

from __future__ import annotations

from aiops_cli.main import app

app()
