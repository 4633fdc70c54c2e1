"""The runbook knowledge base: versioned YAML runbooks, validated at load, matched to causes, resolved to steps."""

from __future__ import annotations

from aiops_action.runbooks.loader import (
    SHIPPED_DIR,
    RunbookError,
    RunbookFolder,
    RunbookLoadError,
    load_configured,
    load_folder,
    load_runbook,
    parse_runbook,
    runbooks_dir,
)
from aiops_action.runbooks.matching import RunbookMatch, match_cause, match_runbooks, specificity
from aiops_action.runbooks.model import Match, Parameter, ParameterType, ParamRef, Risk, Runbook, StepSpec, Verify
from aiops_action.runbooks.parameters import (
    ParameterError,
    ParamValue,
    ResolutionContext,
    ResolvedRunbook,
    ResolvedVerify,
    check_value,
    resolve,
)

__all__ = [
    "SHIPPED_DIR",
    "Match",
    "ParamRef",
    "ParamValue",
    "Parameter",
    "ParameterError",
    "ParameterType",
    "ResolutionContext",
    "ResolvedRunbook",
    "ResolvedVerify",
    "Risk",
    "Runbook",
    "RunbookError",
    "RunbookFolder",
    "RunbookLoadError",
    "RunbookMatch",
    "StepSpec",
    "Verify",
    "check_value",
    "load_configured",
    "load_folder",
    "load_runbook",
    "match_cause",
    "match_runbooks",
    "parse_runbook",
    "resolve",
    "runbooks_dir",
    "specificity",
]
