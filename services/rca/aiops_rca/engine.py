"""The engine: one case in, causes ranked by P(cause | evidence) out, each with its evidence."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiops_common.schemas import RankedCause, RcaStatus

from aiops_rca.case import Case

__all__ = ["Analysis", "RcaConfig", "analyze"]


@dataclass(frozen=True, slots=True)
class RcaConfig:
    """How the engine judges a case (the agent's settings fill it; the defaults suit 10 s series)."""

    anomaly_z: float = 5.0
    """Robust z a series must reach after onset to count as moved."""
    max_lag: int = 6
    """Most lags a Granger test considers (chosen by AIC up to it)."""
    granger_alpha: float = 0.05
    """False discovery rate of the Granger tests of one case (Benjamini-Hochberg)."""
    change_window_s: float = 1800.0
    """A change this long before onset (or up to a minute after) is linked to it."""
    top: int = 10
    """Most causes returned."""


@dataclass(slots=True)
class Analysis:
    causes: list[RankedCause]
    status: RcaStatus
    onset_ms: int | None
    summary: str
    missing: list[str] = field(default_factory=list)


def analyze(case: Case, config: RcaConfig | None = None) -> Analysis:
    raise NotImplementedError
