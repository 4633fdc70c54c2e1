"""``aiops rca analyze``: the engine on files (a post-mortem, a benchmark case), the same code the agent runs."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from aiops_rca.commands._ranking import fail, iso, ranking_lines

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from aiops_rca.case import Case

__all__ = ["analyze", "read_case"]


def _within(name: str, text: str, grid: npt.NDArray[np.int64], metrics: Path) -> int:
    from aiops_rca.files import parse_time

    try:
        ms = parse_time(text)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None
    first, last = int(grid[0]), int(grid[-1])
    if not first <= ms <= last:
        span = f"{iso(datetime.fromtimestamp(first / 1000, UTC))} to {iso(datetime.fromtimestamp(last / 1000, UTC))}"
        raise ValueError(f"{name}: {text} is outside {metrics}, which runs from {span}")
    return ms


def read_case(
    topology: Path,
    metrics: Path,
    changes: Path | None = None,
    onset: str | None = None,
    target: str | None = None,
    baseline_end: str | None = None,
) -> Case:
    """The case the files describe; a ``ValueError`` naming the file (or option) and what is wrong otherwise."""
    from aiops_rca.case import Case
    from aiops_rca.files import load_changes, load_metrics, load_topology, series_key

    services, edges = load_topology(topology)
    grid, series = load_metrics(metrics, services)
    found = load_changes(changes) if changes is not None else []
    onset_ms = _within("--onset", onset, grid, metrics) if onset else None
    baseline_end_ms = _within("--baseline-end", baseline_end, grid, metrics) if baseline_end else None
    key = None
    if target:
        try:
            key = series_key(target, services)
        except ValueError as exc:
            raise ValueError(f"--target: {exc}") from None
        if key not in series:
            raise ValueError(f"--target: {metrics} has no column {target!r} (series {key})")
    first = [key.service] if key is not None else []
    return Case(
        ts_ms=grid,
        series=series,
        edges=edges,
        services=first + [s for s in services if s not in first],
        incident_services=first,
        changes=found,
        onset_ms=onset_ms,
        target=key,
        baseline_end_ms=baseline_end_ms,
    )


def analyze(
    topology: Annotated[
        Path,
        typer.Option(help="Services and call edges: the file format of `aiops topology load`.", show_default=False),
    ],
    metrics: Annotated[
        Path,
        typer.Option(
            help="CSV: a 'timestamp' column (Unix seconds or RFC 3339) and one column per series, SERVICE:METRIC.",
            show_default=False,
        ),
    ],
    changes: Annotated[
        Path | None, typer.Option(help='JSON list of deployments: {"ts", "service", "version"}.', show_default=False)
    ] = None,
    onset: Annotated[
        str | None, typer.Option(help="When the incident began (Unix seconds or RFC 3339); found from the series else.")
    ] = None,
    target: Annotated[
        str | None, typer.Option(help="The series whose failure is investigated (an SLO), SERVICE:METRIC.")
    ] = None,
    baseline_end: Annotated[
        str | None, typer.Option(help="Where normal data ends, when it is not simply everything before onset.")
    ] = None,
    top: Annotated[int, typer.Option(min=1, max=1000, help="Most causes ranked.")] = 10,
    evidence: Annotated[int, typer.Option(min=0, help="Evidence lines per cause in the table.")] = 3,
    as_json: Annotated[
        bool, typer.Option("--json", help='A JSON list of causes, best first: {"service", "probability", "evidence"}.')
    ] = False,
) -> None:
    """Rank the root causes of an incident from files: a topology, metrics around it and recent changes.

    Runs the RCA engine the agent runs; a file that cannot be read exits 2 with one line naming what is wrong.
    """
    from aiops_rca.engine import RcaConfig
    from aiops_rca.engine import analyze as run_engine

    try:
        case = read_case(topology, metrics, changes, onset, target, baseline_end)
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    analysis = run_engine(case, RcaConfig(top=top))
    if as_json:
        typer.echo(json.dumps([cause.model_dump(mode="json") for cause in analysis.causes], indent=2))
        return
    onset_at = None if analysis.onset_ms is None else datetime.fromtimestamp(analysis.onset_ms / 1000, UTC)
    lines = ranking_lines(
        analysis.causes,
        onset=onset_at,
        status=analysis.status.value,
        summary=analysis.summary,
        missing=analysis.missing,
        evidence=evidence,
    )
    typer.echo("\n".join(lines))
