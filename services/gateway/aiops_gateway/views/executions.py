"""Runbooks, executions and decisions as the API shows them: request and response bodies (no I/O here). The rules
a decision is checked against are ``aiops_common.approvals``, the ones the action service applies."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Literal

from aiops_common.schemas import ExecutionRecord
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aiops_gateway.views.models import MAX_NOTE

__all__ = [
    "MAX_PARAMETERS",
    "DecisionAccepted",
    "DecisionRequest",
    "ExecuteRequest",
    "ExecutionList",
    "ExecutionRequested",
    "RunbookList",
    "RunbookParameter",
    "RunbookStep",
    "RunbookVerify",
    "RunbookView",
    "parameter_problems",
    "readable_executions",
]

MAX_PARAMETERS = 50
"""Most parameters one request may name (a runbook has a handful)."""


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunbookParameter(BaseModel):
    """One typed parameter: where its value comes from when the request does not give it."""

    model_config = ConfigDict(extra="allow")
    type: str = ""
    source: str | None = Field(default=None, description="Where the incident supplies it (`cause.service`, ...).")
    default: Any = None
    description: str = ""


class RunbookStep(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str = ""
    kind: str = Field(default="", description="Its executor: `kubernetes`, `http`, `script`.")
    action: str = ""


class RunbookVerify(BaseModel):
    """The check after the steps: ``series`` back inside [lower, upper] for ``for_s`` within ``within_s``."""

    model_config = ConfigDict(extra="allow")
    series: str = ""
    match: dict[str, Any] = Field(default_factory=dict)
    lower: float | None = None
    upper: float | None = None
    within_s: float | None = None
    for_s: float | None = None


class RunbookView(BaseModel):
    """A runbook as the action service loaded it (collection ``runbooks``)."""

    model_config = ConfigDict(extra="allow")
    id: str
    version: int = 1
    title: str = ""
    description: str = ""
    risk: str = ""
    match: str = Field(default="", description="What it matches, in one line.")
    parameters: dict[str, RunbookParameter] = Field(default_factory=dict)
    steps: list[RunbookStep] = Field(default_factory=list)
    rollback: list[RunbookStep] = Field(default_factory=list)
    verify: RunbookVerify | None = None
    loaded_at: datetime | None = None


class RunbookList(BaseModel):
    runbooks: list[RunbookView] = Field(description="By id.")
    next_cursor: str | None = None


class ExecuteRequest(_Request):
    incident_id: str = Field(min_length=1, max_length=512, description="The incident the execution is for.")
    parameters: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        max_length=MAX_PARAMETERS,
        description="Values of the runbook's parameters; the others come from the incident or their defaults. The"
        " action service checks each against its type.",
    )
    note: str = Field(default="", max_length=MAX_NOTE, description="Why, for the approvers and the audit log.")


class ExecutionRequested(BaseModel):
    """The request was sent to the action service, which proposes the execution (with its dry run, blast radius
    and the approvals it needs); it shows up in ``GET /executions?incident_id=…``."""

    status: Literal["requested"] = "requested"
    incident_id: str
    runbook_id: str
    request_id: str


class ExecutionList(BaseModel):
    executions: list[ExecutionRecord] = Field(description="Newest request first.")
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next page, with the same filters; null on the last."
    )


class DecisionRequest(_Request):
    comment: str = Field(default="", max_length=MAX_NOTE, description="Why; a rejection needs one.")


class DecisionAccepted(BaseModel):
    """The decision was sent to the action service, which applies it (and may still refuse it)."""

    execution_id: str
    decision: Literal["approve", "reject"]
    status: Literal["submitted"] = "submitted"
    approvals_needed: int = Field(
        description="Approvals the execution still needs once this one counts (0: it may run; after a rejection:"
        " what it would have needed)."
    )


def readable_executions(bodies: Iterable[Mapping[str, Any]]) -> list[ExecutionRecord]:
    """The stored bodies as records; one another version wrote and this one cannot read is left out."""
    records = []
    for body in bodies:
        try:
            records.append(ExecutionRecord.from_document(body))
        except ValidationError:
            continue
    return records


def _fits(kind: str, value: str | int | float | bool) -> bool:
    """Whether a JSON value can be a parameter of the declared type (as the worker reads it: numbers and booleans
    may come as their text); the worker checks the rest (patterns, ranges)."""
    if kind == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, str) and value.strip().lstrip("+-").isdigit()
        )
    if kind == "number":
        if isinstance(value, bool):
            return False
        if isinstance(value, int | float):
            return True
        try:
            float(value)
        except ValueError:
            return False
        return True
    if kind == "boolean":
        return isinstance(value, bool) or (isinstance(value, str) and value.lower() in ("true", "false"))
    if kind == "string":
        return isinstance(value, str)
    return True  # a type this gateway does not know: the worker decides


def parameter_problems(runbook: Mapping[str, Any], given: Mapping[str, str | int | float | bool]) -> list[str]:
    """What is wrong with the parameters a request gives: names the runbook has no parameter for, values that are
    not of the declared type."""
    declared = runbook.get("parameters")
    known: Mapping[str, Any] = declared if isinstance(declared, Mapping) else {}
    unknown = sorted(name for name in given if name not in known)
    if unknown:
        has = ", ".join(sorted(known)) or "none"
        return [f"runbook {runbook.get('id', '?')} has no parameter {', '.join(unknown)} (it has: {has})"]
    problems = []
    for name, value in sorted(given.items()):
        spec = known[name]
        kind = str(spec.get("type") or "") if isinstance(spec, Mapping) else ""
        if not _fits(kind, value):
            problems.append(f"parameter {name}: {value!r} is not a{'n' if kind == 'integer' else ''} {kind}")
    return problems
