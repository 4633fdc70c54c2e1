"""``aiops demo``'s options for a quicker loop refuse values that would make it meaningless, before anything starts."""

from __future__ import annotations

import pytest
from aiops_cli.demo.command import group
from typer.testing import CliRunner

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--backfill", "2m"], "--backfill takes 6m or more"),
        (["--backfill", "soon"], "is not a duration"),
        (["--verify-for", "5m"], "--verify-for takes at most 180s"),
        (["--warm-windows", "0"], "--warm-windows takes 1 to 30"),
        (["run", "--backfill", "1m"], "--backfill takes 6m or more"),
    ],
)
def test_a_bad_value_is_refused_with_its_reason(args: list[str], says: str) -> None:
    done = CliRunner().invoke(group, args)
    assert done.exit_code == 1, done.output
    assert says in done.output
