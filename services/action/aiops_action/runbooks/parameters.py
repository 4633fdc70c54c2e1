"""Parameter resolution: each value from the incident, a default or an operator, checked, then put into the steps."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiops_common.schemas import EvidenceKind, IncidentRecord, RankedCause

from aiops_action.executors._protocol import Step
from aiops_action.runbooks.steps import LABEL_SLOT, step_problems

if TYPE_CHECKING:
    from aiops_action.runbooks.model import Parameter, Runbook, StepSpec

__all__ = [
    "ParamValue",
    "ParameterError",
    "ResolutionContext",
    "ResolvedRunbook",
    "ResolvedVerify",
    "check_value",
    "resolve",
]

ParamValue = str | int | float | bool

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TRAVERSAL = re.compile(r"(^|[/\\])\.\.([/\\]|$)")
_INTEGER = re.compile(r"[+-]?[0-9]{1,18}")
_NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]{1,3})?")


class ParameterError(ValueError):
    """A value a parameter cannot take, or a parameter with no value; the message names both and why."""


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_value(param: Parameter, value: object) -> ParamValue:
    """``value`` as the parameter's type, or ``ParameterError``. Text (from labels, the command line) is parsed for
    integer, number and boolean; a string must fit the pattern or enum, its length, and hold no control characters
    and no ``..`` path segment, whatever the pattern says."""
    kind = param.type.value
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ParameterError(f"{_shown(value)} is not a boolean (true or false)")
    if kind in ("integer", "number"):
        number: int | float
        if isinstance(value, bool):
            raise ParameterError(f"{_shown(value)} is not {'an integer' if kind == 'integer' else 'a number'}")
        if kind == "integer":
            if isinstance(value, int):
                number = value
            elif isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
                number = int(value.strip())
            else:
                raise ParameterError(f"{_shown(value)} is not an integer")
        else:
            if isinstance(value, int | float):
                number = float(value)
            elif isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
                number = float(value.strip())
            else:
                raise ParameterError(f"{_shown(value)} is not a number")
            if not math.isfinite(number):
                raise ParameterError(f"{_shown(value)} is not a finite number")
        if param.minimum is not None and number < param.minimum:
            raise ParameterError(f"{number:g} is below the minimum {param.minimum:g}")
        if param.maximum is not None and number > param.maximum:
            raise ParameterError(f"{number:g} is above the maximum {param.maximum:g}")
        return number
    if not isinstance(value, str):
        raise ParameterError(f"{_shown(value)} is not a string")
    if len(value) > param.max_length:
        raise ParameterError(f"a value of {len(value)} characters is longer than {param.max_length}")
    if _CONTROL.search(value):
        raise ParameterError(f"{_shown(value)} holds control characters (a newline?)")
    if _TRAVERSAL.search(value):
        raise ParameterError(f"{_shown(value)} holds a '..' path segment")
    if param.enum is not None and value not in param.enum:
        raise ParameterError(f"{_shown(value)} is not one of {', '.join(param.enum)}")
    if param.pattern is not None and not re.fullmatch(param.pattern, value):
        raise ParameterError(f"{_shown(value)} does not match the pattern {param.pattern!r}")
    return value


@dataclass(frozen=True, slots=True)
class ResolutionContext:
    """What a runbook's parameters may be taken from: the matched cause and its incident."""

    cause: RankedCause
    incident: IncidentRecord

    def value_of(self, source: str) -> str | None:
        """The raw text of one source, or None when the incident has none (a label no member carries)."""
        if source == "cause.service":
            return self.cause.service or None
        if source == "incident.id":
            return self.incident.id
        if source == "incident.severity":
            return self.incident.severity.value
        if source == "change.version":
            return self._change_version()
        if source.startswith("labels."):
            return self._label(source.removeprefix("labels."))
        return None

    def member_labels(self) -> Sequence[Mapping[str, str]]:
        """Label sets of the members on the cause's service, the lead's first; all members' when it has none (a
        cause the ranking found through the topology need not have alerts of its own)."""
        members = sorted(self.incident.members, key=lambda m: not m.lead)
        own = [m.labels for m in members if m.service == self.cause.service]
        return own or [m.labels for m in members]

    def _label(self, name: str) -> str | None:
        return next((labels[name] for labels in self.member_labels() if name in labels), None)

    def _change_version(self) -> str | None:
        changes = [
            c for c in self.incident.changes if c.service == self.cause.service and c.kind == "deployment" and c.version
        ]
        if changes:
            return max(changes, key=lambda c: c.at).version
        return next((e.version for e in self.cause.evidence if e.kind is EvidenceKind.CHANGE and e.version), None)


@dataclass(frozen=True, slots=True)
class ResolvedVerify:
    series: str
    match: Mapping[str, str]
    lower: float | None
    upper: float | None
    within_s: float
    for_s: float


@dataclass(frozen=True, slots=True)
class ResolvedRunbook:
    """A runbook ready to run: every parameter's checked value, and the steps with those values in place."""

    runbook_id: str
    version: int
    title: str
    risk: str
    parameters: Mapping[str, ParamValue]
    steps: tuple[Step, ...]
    verify: ResolvedVerify
    rollback: tuple[Step, ...] = ()
    sources: Mapping[str, str] = field(default_factory=dict)
    """Where each value came from: ``override``, ``default`` or the source (``cause.service``, ``labels.disk``)."""


def resolve(
    runbook: Runbook, context: ResolutionContext, overrides: Mapping[str, object] | None = None
) -> ResolvedRunbook:
    """The runbook with every parameter resolved (an operator's override, else its source, else its default) and
    checked; ``ParameterError`` names the first parameter without a valid value. Nothing is templated: a
    reference is replaced by its whole checked value, and every step is checked again with the values in place."""
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(runbook.parameters))
    if unknown:
        raise ParameterError(f"{runbook.id} has no parameter {unknown[0]!r} (it has: {', '.join(runbook.parameters)})")
    values: dict[str, ParamValue] = {}
    sources: dict[str, str] = {}
    for name, param in runbook.parameters.items():
        raw: object
        if name in overrides:
            raw, origin = overrides[name], "override"
        else:
            found = context.value_of(param.source) if param.source else None
            if found is not None:
                raw, origin = found, str(param.source)
            elif param.default is not None:
                raw, origin = param.default, "default"
            else:
                where = f"{param.source} is empty for this incident" if param.source else "it has no source"
                raise ParameterError(f"parameter {name!r}: no value ({where}, no default, no override)")
        try:
            values[name] = check_value(param, raw)
        except ParameterError as exc:
            raise ParameterError(f"parameter {name!r} (from {origin}): {exc}") from None
        sources[name] = origin
    steps = tuple(_step(runbook.id, "steps", i, s, values) for i, s in enumerate(runbook.steps))
    rollback = tuple(_step(runbook.id, "rollback", i, s, values) for i, s in enumerate(runbook.rollback))
    match: dict[str, str] = {}
    for label, v in runbook.verify.match.items():
        text = v if isinstance(v, str) else _as_text(values[v.param])
        problem = LABEL_SLOT.check(text)
        if problem:
            raise ParameterError(f"{runbook.id}: verify.match.{label}: {problem}")
        match[label] = text
    verify = ResolvedVerify(
        series=runbook.verify.series,
        match=match,
        lower=runbook.verify.lower,
        upper=runbook.verify.upper,
        within_s=runbook.verify.within_s,
        for_s=runbook.verify.for_s,
    )
    return ResolvedRunbook(
        runbook_id=runbook.id,
        version=runbook.version,
        title=runbook.title,
        risk=runbook.risk.value,
        parameters=values,
        steps=steps,
        verify=verify,
        rollback=rollback,
        sources=sources,
    )


def _as_text(value: ParamValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _substitute(value: Any, values: Mapping[str, ParamValue], *, text: bool = False) -> Any:
    from aiops_action.runbooks.model import ParamRef

    if isinstance(value, ParamRef):
        resolved = values[value.param]
        return _as_text(resolved) if text else resolved
    if isinstance(value, Mapping):
        return {k: _substitute(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, values, text=text) for v in value]
    return value


def _step(runbook_id: str, part: str, index: int, spec: StepSpec, values: Mapping[str, ParamValue]) -> Step:
    # argv is handed to exec as strings; a number or boolean parameter there is written out, never formatted
    arguments = {
        name: _substitute(v, values, text=name == "argv" and spec.kind.value == "script")
        for name, v in spec.arguments.items()
    }
    problems = step_problems(spec.kind, spec.action, arguments, None)
    if problems:
        path, message = problems[0]
        raise ParameterError(f"{runbook_id}: {part}[{index}].{path}: {message}")
    return Step(name=spec.name, kind=spec.kind.value, action=spec.action, arguments=arguments, timeout_s=spec.timeout_s)
