"""What import-linter cannot see: no package below the ``aiops`` command starts it as a process."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
BELOW_THE_CLI = [ROOT / "libs/common/aiops_common", *sorted(ROOT.glob("services/*/aiops_*"))]


def test_common_and_services_do_not_start_the_aiops_command() -> None:
    # `python -m aiops_cli ...` or the `aiops` script in a subprocess is an import by another name.
    starts = sorted(
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for package in BELOW_THE_CLI
        for path in package.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Constant) and node.value in ("aiops_cli", "aiops")
    )
    assert len(BELOW_THE_CLI) >= 4
    assert not starts, f"these start the aiops command; move them to aiops_cli (tests: aiops_cli.testing): {starts}"
