"""Runtime configuration that operators change while the platform runs (``PUT /api/v1/config/detection``).

A configuration is a versioned document in the document store's ``config`` collection (id ``KIND.vN``); the
services that use it read the newest version of their kind and pick up a new one without a restart.
"""

from __future__ import annotations

from datetime import datetime
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["DetectionConfig", "DetectionConfigVersion", "SensitivityOverride", "StaticRule", "config_doc_id"]


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StaticRule(_Part):
    """Known limits of one metric (every series of that name, or only a service's): beyond them is anomalous."""

    metric: str = Field(min_length=1, max_length=256, description="Metric name, as stored (e.g. disk_used_percent).")
    service: str = Field(default="", max_length=256, description="Only this service's series; empty: every one.")
    lower: float | None = Field(default=None, allow_inf_nan=False)
    upper: float | None = Field(default=None, allow_inf_nan=False)

    @model_validator(mode="after")
    def _limits(self) -> Self:
        if self.lower is None and self.upper is None:
            raise ValueError(f"static rule for {self.metric!r} needs a lower limit, an upper limit or both")
        if self.lower is not None and self.upper is not None and self.lower > self.upper:
            raise ValueError(f"static rule for {self.metric!r}: lower {self.lower} is above upper {self.upper}")
        return self


class SensitivityOverride(_Part):
    """How much less (or more) readily one series or every series of a service alerts.

    ``slack``: band widths a value must exceed beyond its expected band (0: the detector's own band; it adds to
    what feedback learned). ``min_score``: the score an anomaly must beat. Exactly one of ``series_key`` and
    ``service`` names the scope; a series' own override wins over its service's.
    """

    series_key: str = Field(default="", max_length=4096)
    service: str = Field(default="", max_length=256)
    slack: float = Field(default=0.0, ge=0.0, le=100.0)
    min_score: float | None = Field(default=None, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _scope(self) -> Self:
        if bool(self.series_key) == bool(self.service):
            raise ValueError("a sensitivity override names exactly one of series_key and service")
        return self


class DetectionConfig(_Part):
    """What an operator sets for detection; a field left None keeps the service's own setting (``AIOPS_DETECT_*``)."""

    flag_score: float | None = Field(default=None, ge=0.0, le=1.0, description="Score from which a point is flagged.")
    confirm_score: float | None = Field(default=None, ge=0.0, le=1.0, description="Score that confirms an anomaly.")
    severities: tuple[float, float, float] | None = Field(
        default=None, description="Scores from which an anomaly is minor, major, critical (increasing, in [0, 1])."
    )
    static_rules: list[StaticRule] = Field(default_factory=list, max_length=10_000)
    sensitivity: list[SensitivityOverride] = Field(default_factory=list, max_length=100_000)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.severities is not None:
            a, b, c = self.severities
            if not 0.0 <= a <= b <= c <= 1.0:
                raise ValueError(f"severities must increase within [0, 1], got {list(self.severities)}")
        if self.flag_score is not None and self.confirm_score is not None and self.confirm_score < self.flag_score:
            raise ValueError("confirm_score must not be below flag_score")
        rules = [(r.metric, r.service) for r in self.static_rules]
        if len(rules) != len(set(rules)):
            raise ValueError("static_rules names the same metric (and service) twice")
        scopes = [(s.series_key, s.service) for s in self.sensitivity]
        if len(scopes) != len(set(scopes)):
            raise ValueError("sensitivity names the same series or service twice")
        return self


class DetectionConfigVersion(_Part):
    """One stored version of the detection configuration: who set it, when and why."""

    kind: str = "detection"
    version: int = Field(ge=1)
    at: datetime
    by: str
    note: str = ""
    config: DetectionConfig


def config_doc_id(kind: str, version: int) -> str:
    """The document id of a configuration version, e.g. ``detection.v3``."""
    return f"{kind}.v{version}"
