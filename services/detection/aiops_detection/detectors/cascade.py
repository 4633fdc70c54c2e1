"""The detection cascade: tier 1 sees every point, tier 2 what tier 1 flags, tier 3 what tier 2 passes.

Cheap first: the robust band (tier 1) scores everything; only points it flags
(``score >= flag``) pay for the seasonal forecast (tier 2); only those tier 2 also
finds unusual (``>= confirm``) pay for the window model (tier 3). The final score
is the tier-1 score, raised to the mean of tiers 2 and 3 when both ran and agree
that the point is more anomalous than tier 1 alone says. Every tier learns every
point, so its state stays current whether it scored or not.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from aiops_detection.detectors.detector import Detector, FloatArray, as_panel
from aiops_detection.detectors.robust_band import RobustBandDetector
from aiops_detection.detectors.seasonal_forecast import SeasonalForecastDetector
from aiops_detection.detectors.seasonality import candidate_periods
from aiops_detection.detectors.window_model import WindowModelDetector

__all__ = ["Cascade", "CascadeExplanation", "Severity", "Verdict"]


class Severity(enum.IntEnum):
    NONE = 0
    MINOR = 1
    MAJOR = 2
    CRITICAL = 3


@dataclass(frozen=True, slots=True)
class Verdict:
    """The cascade's answer for one point."""

    score: float
    lower: float
    upper: float
    """Expected band: values in it would have scored below 0.5 (NaN while cold)."""
    severity: Severity
    evidence: Mapping[str, float] = field(default_factory=dict)
    """Score of every tier that ran, by tier name (``basic``, ``agile``, ``robust``)."""


@dataclass(frozen=True, slots=True)
class CascadeExplanation:
    """Cascade scores and per-tier evidence for a ``(series, time)`` block; NaN where a tier did not run."""

    score: FloatArray
    basic: FloatArray
    agile: FloatArray
    robust: FloatArray
    lower: FloatArray
    upper: FloatArray
    basic_all: FloatArray
    agile_all: FloatArray
    robust_all: FloatArray
    """Each tier's score at every point, as if it had run alone."""


class Cascade(Detector[float]):
    """Tier 1 flags, tier 2 checks, tier 3 confirms; scores in [0, 1] with bands, evidence and severity."""

    def __init__(
        self,
        basic: RobustBandDetector | None = None,
        agile: SeasonalForecastDetector | None = None,
        robust: WindowModelDetector | None = None,
        flag: float = 0.1,
        confirm: float = 0.1,
        severities: tuple[float, float, float] = (0.5, 0.75, 0.9),
    ) -> None:
        self.basic = basic if basic is not None else RobustBandDetector()
        self.agile = agile if agile is not None else SeasonalForecastDetector()
        self.robust = robust if robust is not None else WindowModelDetector()
        self.flag = flag
        self.confirm = confirm
        self.severities = severities
        """Lowest score of a minor, major and critical anomaly."""

    @classmethod
    def for_sampling_step(cls, step_s: float, seed: int = 0, device: str | None = None) -> Cascade:
        """A cascade with default tiers, looking for daily and weekly seasonality at this sampling step."""
        periods = candidate_periods(step_s)
        return cls(
            agile=SeasonalForecastDetector(periods=periods),
            robust=WindowModelDetector(periods=periods, seed=seed, device=device),
        )

    def severity(self, score: float) -> Severity:
        return Severity(int(np.searchsorted(np.asarray(self.severities), score, side="right")))

    def verdict_one(self, x: float) -> Verdict:
        """Score, band, severity and per-tier evidence of ``x``; changes nothing."""
        return self.verdict_given_basic(x, self.basic.score_one(x), *self.basic.expected_band())

    def verdict_given_basic(self, x: float, basic: float, lower: float, upper: float) -> Verdict:
        """``verdict_one`` with tier 1's score and expected band computed elsewhere; changes nothing.

        For a tier-1 state kept outside the cascade (``RobustBandPanel``, which scores many
        series at once); with :meth:`learn_deeper_one` the same numbers as ``verdict_one``
        then ``learn_one``.
        """
        evidence = {"basic": basic}
        score = basic
        if basic >= self.flag:
            agile = self.agile.score_one(x)
            evidence["agile"] = agile
            agile_lower, agile_upper = self.agile.expected_band()
            if not np.isnan(agile_lower):
                lower, upper = agile_lower, agile_upper
            if agile >= self.confirm:
                robust = self.robust.score_one(x)
                evidence["robust"] = robust
                score = max(basic, 0.5 * (agile + robust))
        return Verdict(score, lower, upper, self.severity(score), evidence)

    def score_one(self, x: float) -> float:
        return self.verdict_one(x).score

    def learn_one(self, x: float) -> None:
        self.basic.learn_one(x)
        self.learn_deeper_one(x)

    def learn_deeper_one(self, x: float) -> None:
        """Learn ``x`` in tiers 2 and 3 only: tier 1 learned it where it was scored."""
        self.agile.learn_one(x)
        self.robust.learn_one(x)

    def score_many(self, batch: npt.ArrayLike) -> FloatArray:
        return self.explain_many(batch).score

    def explain_many(self, batch: npt.ArrayLike) -> CascadeExplanation:
        """The cascade over a ``(series, time)`` block, each row streamed from fresh tiers.

        Every tier is run over the whole block in its vectorised form and the gating is
        applied afterwards: the same numbers as point-by-point gating, computed in bulk.
        """
        panel = as_panel(batch)
        basic = self.basic.explain_many(panel)
        agile = self.agile.explain_many(panel)
        robust = self.robust.score_many(panel)
        flagged = basic.score >= self.flag
        confirmed = flagged & (agile.score >= self.confirm)
        score = np.where(confirmed, np.maximum(basic.score, 0.5 * (agile.score + robust)), basic.score)
        use_agile_band = flagged & ~np.isnan(agile.lower)
        return CascadeExplanation(
            score=score,
            basic=basic.score,
            agile=np.where(flagged, agile.score, np.nan),
            robust=np.where(confirmed, robust, np.nan),
            lower=np.where(use_agile_band, agile.lower, basic.lower),
            upper=np.where(use_agile_band, agile.upper, basic.upper),
            basic_all=basic.score,
            agile_all=agile.score,
            robust_all=robust,
        )
