"""The runbook schema: match conditions, typed parameters, steps, verification and rollback, checked at load."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from typing import Annotated, Any

from aiops_common.schemas import CauseKind, IncidentSeverity
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from aiops_action.runbooks.parameters import ParameterError, check_value
from aiops_action.runbooks.steps import LABEL_SLOT, StepKind, step_problems

__all__ = [
    "HOSTILE_PROBES",
    "PARAMETER_SOURCES",
    "Match",
    "ParamRef",
    "Parameter",
    "ParameterType",
    "Risk",
    "Runbook",
    "StepSpec",
    "Verify",
]

_ID = r"^[a-z0-9][a-z0-9._-]{0,62}$"
_NAME = r"^[a-z][a-z0-9_]{0,62}$"
_SERIES = r"^[A-Za-z_:][A-Za-z0-9_:.]{0,255}$"
_LABEL = r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$"

PARAMETER_SOURCES = ("cause.service", "incident.id", "incident.severity", "change.version")
"""Where a parameter's value may come from, besides ``labels.<name>`` (a label of the incident's members)."""

HOSTILE_PROBES = ("a;b", "a|b", "a&b", "$a", "a`b", "a>b", "a<b", "{{a}}", "${a}", "a'b", 'a"b', "a\\b", "a*b", "a\nb")
"""Values a string parameter's pattern or enum must refuse: shell and template syntax, quotes, newlines. Nothing
reaches a shell or a template, but a value that could mean something to one has no business in a runbook."""


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Risk(enum.StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class ParameterType(enum.StrEnum):
    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"


class ParamRef(_Part):
    """``{param: NAME}``: stands for a whole argument value, never for part of a string."""

    param: str = Field(pattern=_NAME)


class Match(_Part):
    """When a runbook applies to a ranked cause of an incident; every condition given must hold."""

    cause_kinds: list[CauseKind] = Field(min_length=1)
    services: list[Annotated[str, Field(min_length=1, max_length=253)]] = Field(default_factory=list)
    """Service names or shell-style globs (``pay*``); empty: any service."""
    labels: dict[Annotated[str, Field(pattern=_LABEL)], str] = Field(default_factory=dict)
    """Exact ``key: value`` pairs one incident member on the cause's service must carry."""
    min_severity: IncidentSeverity = IncidentSeverity.INFO
    series: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(default_factory=list)
    """Metric names or globs (``disk_*``) one of the cause's series must match (its metric findings, its evidence,
    the signals of the incident's members on its service); empty: any."""
    rules: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(default_factory=list)
    """Names of the RCA rules (``deployment``, ``saturation``, ``crash_loop``) that must have put the cause first;
    empty: any ranking."""

    @field_validator("cause_kinds")
    @classmethod
    def _known_kinds(cls, kinds: list[CauseKind]) -> list[CauseKind]:
        if CauseKind.UNKNOWN in kinds:
            raise ValueError("'unknown' is not a kind a runbook can fix; name latency, errors, traffic, ...")
        return kinds


class Parameter(_Part):
    """A typed value a runbook's steps use; from the incident (``from``), a ``default``, or an operator."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    type: ParameterType
    description: str = ""
    pattern: str | None = None
    """Strings: the whole value must match it (``re.fullmatch``)."""
    enum: list[str] | None = Field(default=None, min_length=1)
    max_length: int = Field(default=253, ge=1, le=4096)
    minimum: float | None = None
    maximum: float | None = None
    default: str | int | float | bool | None = None
    source: str | None = Field(default=None, alias="from")
    """``cause.service``, ``incident.id``, ``incident.severity``, ``change.version`` or ``labels.<name>``."""

    @field_validator("default", mode="before")
    @classmethod
    def _a_scalar(cls, value: object) -> object:
        if value is not None and not isinstance(value, str | int | float | bool):
            raise ValueError(f"a default is a string, number or boolean, not {type(value).__name__}")
        return value

    @field_validator("source")
    @classmethod
    def _known_source(cls, source: str | None) -> str | None:
        if source is None or source in PARAMETER_SOURCES or re.fullmatch(r"labels\.[A-Za-z_][A-Za-z0-9_.-]*", source):
            return source
        raise ValueError(f"unknown source {source!r}; one of {', '.join(PARAMETER_SOURCES)} or labels.<name>")

    @model_validator(mode="after")
    def _fits_its_type(self) -> Parameter:
        if self.type is ParameterType.STRING:
            if self.pattern is None and self.enum is None:
                raise ValueError("a string parameter needs a pattern or an enum (what values it may take)")
            if self.pattern is not None:
                try:
                    compiled = re.compile(self.pattern)
                except re.error as exc:
                    raise ValueError(f"pattern {self.pattern!r} is not a regular expression: {exc}") from None
                accepted = [p for p in HOSTILE_PROBES if compiled.fullmatch(p)]
                if accepted:
                    raise ValueError(
                        f"pattern {self.pattern!r} accepts {accepted[0]!r} (shell or template syntax); "
                        "allow only the characters the value needs"
                    )
            for value in self.enum or ():
                if any(ch in value for ch in ";|&$`<>{}'\"\\*\n\r"):
                    raise ValueError(f"enum value {value!r} holds shell or template syntax")
        else:
            if self.pattern is not None or self.enum is not None:
                raise ValueError(f"pattern and enum are for strings, not {self.type.value}")
        if self.type not in (ParameterType.INTEGER, ParameterType.NUMBER) and (
            self.minimum is not None or self.maximum is not None
        ):
            raise ValueError(f"minimum and maximum are for integer and number, not {self.type.value}")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError(f"minimum {self.minimum:g} is above maximum {self.maximum:g}")
        if self.default is not None:
            try:
                check_value(self, self.default)
            except ParameterError as exc:
                raise ValueError(f"default: {exc}") from None
        return self


StepArgument = Any
"""A literal (string, number, boolean, list, mapping) or a ``{param: NAME}`` reference, at any depth."""


class StepSpec(_Part):
    name: str = Field(min_length=1, max_length=128)
    kind: StepKind
    action: str = Field(min_length=1, max_length=64)
    arguments: dict[str, StepArgument] = Field(default_factory=dict)
    timeout_s: float = Field(default=60.0, gt=0, le=3600)

    @field_validator("arguments", mode="before")
    @classmethod
    def _references(cls, arguments: object) -> object:
        if not isinstance(arguments, Mapping):
            return arguments
        return {name: _parse_refs(value, str(name)) for name, value in arguments.items()}


class Verify(_Part):
    """Which series must come back inside which band, within how long (and stay there ``for_s``)."""

    series: str = Field(pattern=_SERIES)
    match: dict[Annotated[str, Field(pattern=_LABEL)], str | ParamRef] = Field(default_factory=dict)
    lower: float | None = None
    upper: float | None = None
    within_s: float = Field(gt=0, le=86400)
    for_s: float = Field(default=0.0, ge=0)

    @field_validator("match", mode="before")
    @classmethod
    def _references(cls, match: object) -> object:
        if not isinstance(match, Mapping):
            return match
        parsed: dict[object, object] = {}
        for label, value in match.items():
            if not isinstance(value, str | Mapping):
                raise ValueError(f"{label}: a label value is a string or {{param: NAME}}, not {type(value).__name__}")
            parsed[label] = _parse_refs(value, str(label))
        return parsed

    @model_validator(mode="after")
    def _a_band(self) -> Verify:
        if self.lower is None and self.upper is None:
            raise ValueError("give lower, upper or both: the band the series must come back into")
        if self.lower is not None and self.upper is not None and self.lower > self.upper:
            raise ValueError(f"lower {self.lower:g} is above upper {self.upper:g}")
        if self.for_s > self.within_s:
            raise ValueError(f"for_s {self.for_s:g} is longer than within_s {self.within_s:g}")
        return self


class Runbook(_Part):
    """One versioned runbook as its YAML file holds it, checked as a whole (every reference, every step)."""

    id: str
    version: int = Field(ge=1)
    title: str = Field(min_length=1, max_length=200)
    description: str = ""
    risk: Risk
    match: Match
    parameters: dict[Annotated[str, Field(pattern=_NAME)], Parameter] = Field(default_factory=dict)
    steps: list[StepSpec] = Field(min_length=1)
    verify: Verify
    rollback: list[StepSpec] = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _an_id(cls, value: str) -> str:
        if not re.fullmatch(_ID, value):
            raise ValueError(f"{value!r}: lower case letters, digits, '.', '_' and '-', at most 63 (e.g. restart-api)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Runbook:
        problems: list[str] = []
        for part, steps in (("steps", self.steps), ("rollback", self.rollback)):
            seen: set[str] = set()
            for i, step in enumerate(steps):
                if step.name in seen:
                    problems.append(f"{part}[{i}].name: {step.name!r} is used twice in {part}")
                seen.add(step.name)
                problems += [
                    f"{part}[{i}].{path}: {message}"
                    for path, message in step_problems(step.kind, step.action, step.arguments, self.parameters)
                ]
        for label, value in self.verify.match.items():
            if isinstance(value, ParamRef):
                problems += [
                    f"verify.match.{label}: {m}" for m in LABEL_SLOT.ref_problems(value.param, self.parameters)
                ]
            else:
                problems += [f"verify.match.{label}: {m}" for m in LABEL_SLOT.literal_problems(value)]
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def describe_match(self) -> str:
        """One line for people: what it matches, e.g. ``deployment on any service, severity >= major``."""
        m = self.match
        text = "/".join(k.value for k in m.cause_kinds) + " on " + (", ".join(m.services) or "any service")
        if m.series:
            text += f", series {'/'.join(m.series)}"
        if m.rules:
            text += f", rule {'/'.join(m.rules)}"
        if m.labels:
            text += ", labels " + ",".join(f"{k}={v}" for k, v in sorted(m.labels.items()))
        if m.min_severity is not IncidentSeverity.INFO:
            text += f", severity >= {m.min_severity.value}"
        return text


def _parse_refs(value: object, path: str) -> object:
    """``{param: NAME}`` mappings become ``ParamRef``; a mapping with ``param`` and other keys is an error."""
    if isinstance(value, Mapping):
        if "param" in value:
            if set(value) != {"param"}:
                raise ValueError(f"{path}: a {{param: NAME}} reference stands alone, no other keys beside param")
            name = value["param"]
            if not isinstance(name, str) or not re.fullmatch(_NAME, name):
                raise ValueError(f"{path}: {name!r} is not a parameter name (lower case letters, digits and _)")
            return ParamRef(param=name)
        return {k: _parse_refs(v, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_parse_refs(v, f"{path}[{i}]") for i, v in enumerate(value)]
    return value
