"""``aiops runbooks``: check a folder of runbooks, list the runbooks the action service uses, and ask for one to run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from aiops_action.commands.approvals import request

if TYPE_CHECKING:
    from aiops_action.runbooks import Runbook, RunbookFolder

__all__ = ["group"]

group = typer.Typer(
    help="Check and list the runbook knowledge base; request a runbook's execution.", no_args_is_help=True
)
group.command("request")(request)


def _line(runbook: Runbook, file: str) -> str:
    steps = len(runbook.steps)
    rollback = f", rollback {len(runbook.rollback)}" if runbook.rollback else ""
    return (
        f"{runbook.id} v{runbook.version} ({runbook.risk.value} risk, {steps} step{'s' * (steps != 1)}{rollback})"
        f" {file}: {runbook.describe_match()}"
    )


def _problems(folder: RunbookFolder) -> None:
    for problem in folder.problems:
        typer.secho(f"error: {problem}", err=True, fg=typer.colors.RED)


@group.command("validate")
def validate(
    folder: Annotated[Path, typer.Argument(help="A folder of runbooks (every *.yaml / *.yml below it).")],
) -> None:
    """Check every runbook in FOLDER: one line per valid runbook, then every problem; exit 1 on any problem."""
    from aiops_action.runbooks import load_folder

    loaded = load_folder(folder)
    for runbook in loaded.runbooks:
        typer.echo(_line(runbook, loaded.files[runbook.id]))
    if loaded.problems:
        _problems(loaded)
        bad = len({p.split(":", 1)[0] for p in loaded.problems})
        typer.echo(f"{len(loaded.runbooks)} valid, {bad} with problems ({len(loaded.problems)})", err=True)
        raise typer.Exit(code=1)
    if not loaded.runbooks:
        typer.secho(f"error: no runbooks (*.yaml, *.yml) in {folder}", err=True, fg=typer.colors.RED)
        raise typer.Exit(code=1)
    typer.echo(f"{len(loaded.runbooks)} runbooks valid", err=True)


@group.command("list")
def list_runbooks(
    folder: Annotated[
        Path | None,
        typer.Option("--dir", help="A folder of runbooks; default AIOPS_ACTION_RUNBOOKS_DIR, else the shipped ones."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON array of the runbooks, as their files hold them.")
    ] = False,
) -> None:
    """List the runbooks: id, version, risk, what each matches (exit 1 when a file has problems)."""
    from aiops_action.runbooks import load_folder, runbooks_dir
    from aiops_action.settings import ActionSettings

    where = folder if folder is not None else runbooks_dir(ActionSettings())
    loaded = load_folder(where)
    if as_json:
        listed = [{**r.model_dump(mode="json", by_alias=True), "file": loaded.files[r.id]} for r in loaded.runbooks]
        typer.echo(json.dumps(listed, indent=2))
    elif loaded.runbooks:
        typer.echo(f"{'ID':<28}{'VERSION':<9}{'RISK':<8}MATCHES")
        for r in loaded.runbooks:
            typer.echo(f"{r.id:<28}{r.version:<9}{r.risk.value:<8}{r.describe_match()}")
    else:
        typer.echo(f"no runbooks in {where}")
    if loaded.problems:
        _problems(loaded)
        raise typer.Exit(code=1)
