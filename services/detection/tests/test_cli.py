"""Detection's own commands: ``aiops feedback`` refuses an id the feedback store does not know, unless forced."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest
from aiops_detection import cli
from typer.testing import CliRunner

runner = CliRunner()


@pytest.mark.unit
def test_docstring_examples() -> None:
    result = doctest.testmod(cli)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.functional
def test_feedback_on_an_unknown_id_exits_1_and_says_why(tmp_path: Path) -> None:
    env = {"AIOPS_DATA_DIR": str(tmp_path), "AIOPS_BROKER_URL": ""}
    done = runner.invoke(cli.commands, ["feedback", "an-nope", "--false-positive"], env=env)
    assert done.exit_code == 1
    assert "no anomaly 'an-nope' in the feedback store" in done.output
    assert f"sqlite:///{tmp_path}/feedback.sqlite" in done.output

    # Forced, the store is not asked; with no platform to send it to, that is the refusal.
    forced = runner.invoke(cli.commands, ["feedback", "an-nope", "--false-positive", "--force"], env=env)
    assert forced.exit_code == 1
    assert "no platform is running" in forced.output


@pytest.mark.unit
def test_feedback_needs_exactly_one_label() -> None:
    done = runner.invoke(cli.commands, ["feedback", "an-x"])
    assert done.exit_code == 1
    assert "exactly one of --false-positive and --true-positive" in done.output
