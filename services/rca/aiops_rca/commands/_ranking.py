"""How ``aiops rca analyze`` and ``aiops rca show`` print a ranking: a table of causes, each with its top evidence."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from aiops_common.schemas import RankedCause

__all__ = ["fail", "iso", "ranking_lines"]


def fail(message: str, code: int = 1) -> typer.Exit:
    """One red line on stderr, and the exit to raise: 2 for bad input, 1 for what is not there."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=code)


def iso(at: datetime) -> str:
    """
    >>> iso(datetime(2026, 3, 12, 14, 20, tzinfo=UTC))
    '2026-03-12T14:20:00Z'
    """
    return at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _sign(weight: float) -> str:
    return "+" if weight > 0 else "-" if weight < 0 else " "


def ranking_lines(
    causes: Sequence[RankedCause],
    *,
    onset: datetime | None,
    status: str,
    summary: str = "",
    missing: Sequence[str] = (),
    evidence: int = 3,
) -> list[str]:
    """The causes best first (rank, service, probability, kind, the rule that fired) with their ``evidence`` strongest
    pieces (``+`` for, ``-`` against), then the onset, the status, the summary and what was missing."""
    lines: list[str] = []
    if causes:
        width = max(7, *(len(c.service) for c in causes))
        lines.append(f"{'RANK':>4}  {'SERVICE':<{width}}  {'P(CAUSE)':>8}  {'KIND':<10}  RULE")
        for rank, cause in enumerate(causes, 1):
            head = (
                f"{rank:>4}  {cause.service:<{width}}  {cause.probability:>8.3f}  {cause.kind.value:<10}  {cause.rule}"
            )
            lines.append(head.rstrip())
            for piece in cause.evidence[:evidence]:
                lines.append(f"{'':>6}{_sign(piece.weight)} {piece.text}")
            left = len(cause.evidence) - evidence
            if left > 0 and evidence > 0:
                lines.append(f"{'':>8}({left} more; --json shows all)")
    else:
        lines.append("no cause ranked")
    lines.append(f"onset: {iso(onset) if onset is not None else 'not found'}")
    lines.append(f"status: {status}")
    if summary:
        lines.append(f"summary: {summary}")
    lines.extend(f"missing: {what}" for what in missing)
    return lines
