"""What each step kind and action takes, checked the same way on a runbook's references and on resolved values."""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from aiops_action.runbooks.model import Parameter

__all__ = ["HTTP_METHODS", "KUBERNETES_ACTIONS", "LABEL_SLOT", "Slot", "StepKind", "step_problems"]

HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TEMPLATE = re.compile(r"\{\{|\{%|\$\{")
MAX_REPLICAS = 1000


class StepKind(enum.StrEnum):
    KUBERNETES = "kubernetes"
    HTTP = "http"
    SCRIPT = "script"


@dataclass(frozen=True, slots=True)
class Slot:
    """One argument's place: what a literal there must be, and which parameter types may stand for it."""

    what: str
    check: Callable[[Any], str | None]
    ref_types: frozenset[str]

    def literal_problems(self, value: Any) -> list[str]:
        problem = self.check(value)
        return [problem] if problem else []

    def ref_problems(self, name: str, parameters: Mapping[str, Parameter]) -> list[str]:
        param = parameters.get(name)
        if param is None:
            declared = ", ".join(sorted(parameters)) or "none"
            return [f"no parameter {name!r} (declared: {declared})"]
        if param.type.value not in self.ref_types:
            return [f"parameter {name!r} is {param.type.value}; {self.what} needs {'/'.join(sorted(self.ref_types))}"]
        return []


def _text(value: Any, limit: int = 4096) -> str | None:
    if not isinstance(value, str):
        return f"expected a string, got {type(value).__name__}"
    if _CONTROL.search(value):
        return "control characters (newlines, NUL) are not allowed"
    if len(value) > limit:
        return f"longer than {limit} characters"
    if _TEMPLATE.search(value):
        return "looks like a template; runbooks never template strings: use {param: NAME} for a whole value"
    return None


def _dns(pattern: re.Pattern[str], limit: int, what: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        problem = _text(value, limit)
        if problem:
            return problem
        if not pattern.fullmatch(value):
            return f"{value!r} is not a Kubernetes {what} (lower case letters, digits, '-', at most {limit})"
        return None

    return check


def _replicas(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return f"expected an integer, got {type(value).__name__}"
    if not 0 <= value <= MAX_REPLICAS:
        return f"{value} is outside 0..{MAX_REPLICAS}"
    return None


def _url(value: Any) -> str | None:
    problem = _text(value, 2048)
    if problem:
        return problem
    if any(ch.isspace() for ch in value):
        return "a URL holds no spaces"
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{value!r} is not an http:// or https:// URL with a host"
    return None


def _absolute(value: Any) -> str | None:
    problem = _text(value)
    if problem:
        return problem
    if not value.startswith("/"):
        return f"{value!r} is not an absolute path"
    if re.search(r"(^|/)\.\.(/|$)", value):
        return f"{value!r} climbs out with '..'"
    return None


_STRING = frozenset({"string"})
_ANY = frozenset({"string", "integer", "number", "boolean"})
NAMESPACE = Slot("a namespace", _dns(_DNS_LABEL, 63, "namespace"), _STRING)
DEPLOYMENT = Slot("a deployment", _dns(_DNS_SUBDOMAIN, 253, "name"), _STRING)
NODE = Slot("a node", _dns(_DNS_SUBDOMAIN, 253, "node name"), _STRING)
REPLICAS = Slot("replicas", _replicas, frozenset({"integer"}))
URL = Slot("a URL", _url, _STRING)
PATH = Slot("a path", _absolute, _STRING)
TEXT = Slot("a string", _text, _STRING)
ARG = Slot("an argument", _text, _ANY)
LABEL_SLOT = Slot("a label value", lambda v: _text(v, 1024), _ANY)

KUBERNETES_ACTIONS: dict[str, dict[str, tuple[Slot, bool]]] = {
    "scale": {"namespace": (NAMESPACE, True), "deployment": (DEPLOYMENT, True), "replicas": (REPLICAS, True)},
    "rollout_restart": {"namespace": (NAMESPACE, True), "deployment": (DEPLOYMENT, True)},
    "rollback": {"namespace": (NAMESPACE, True), "deployment": (DEPLOYMENT, True)},
    "cordon": {"node": (NODE, True)},
}

Problems = list[tuple[str, str]]


def step_problems(
    kind: StepKind, action: str, arguments: Mapping[str, Any], parameters: Mapping[str, Parameter] | None
) -> Problems:
    """Every problem of one step as ``(argument path, message)``; ``parameters`` None: the values are resolved
    (no reference may be left), else references are checked against the declared parameters."""
    from aiops_action.runbooks.model import ParamRef

    def value(slot: Slot, v: Any, path: str) -> Problems:
        if isinstance(v, ParamRef):
            if parameters is None:
                return [(path, f"reference to {v.param!r} left unresolved")]
            return [(path, m) for m in slot.ref_problems(v.param, parameters)]
        return [(path, m) for m in slot.literal_problems(v)]

    def shape(spec: Mapping[str, tuple[Slot, bool]], extra: Callable[[str, Any], Problems] | None = None) -> Problems:
        found: Problems = []
        for name, (_, required) in spec.items():
            if required and name not in arguments:
                found.append((f"arguments.{name}", f"required for {kind.value} {action}"))
        for name, v in arguments.items():
            if name in spec:
                found += value(spec[name][0], v, f"arguments.{name}")
            elif extra is not None and name in ("headers", "body", "argv", "cwd"):
                found += extra(name, v)
            else:
                expected = ", ".join([*spec, *(("headers", "body") if kind is StepKind.HTTP else ())])
                expected += ", argv, cwd" if kind is StepKind.SCRIPT else ""
                found.append((f"arguments.{name}", f"not an argument of {kind.value} {action} (expected: {expected})"))
        return found

    if kind is StepKind.KUBERNETES:
        spec = KUBERNETES_ACTIONS.get(action)
        if spec is None:
            return [("action", f"kubernetes has no action {action!r}; one of {', '.join(KUBERNETES_ACTIONS)}")]
        return shape(spec)
    if kind is StepKind.HTTP:
        if action not in HTTP_METHODS:
            return [("action", f"an http step's action is its method, one of {', '.join(HTTP_METHODS)}")]
        return shape({"url": (URL, True)}, lambda name, v: _http_extra(name, v, value))
    if action != "run":
        return [("action", "a script step's action is 'run'")]
    problems = shape({}, lambda name, v: _script_extra(name, v, value))
    if "argv" not in arguments:
        problems.insert(0, ("arguments.argv", "required for script run: the program and its arguments, no shell"))
    return problems


def _http_extra(name: str, v: Any, value: Callable[[Slot, Any, str], Problems]) -> Problems:
    path = f"arguments.{name}"
    if name == "headers":
        if not isinstance(v, Mapping):
            return [(path, "expected a mapping of header names to values")]
        found: Problems = []
        for header, text in v.items():
            if not isinstance(header, str) or not _HEADER_NAME.fullmatch(header):
                found.append((f"{path}.{header}", "not a header name"))
            else:
                found += value(TEXT, text, f"{path}.{header}")
        return found
    if name == "body":
        return _json(v, path, value)
    return [(path, "not an argument of an http step (expected: url, headers, body)")]


def _json(v: Any, path: str, value: Callable[[Slot, Any, str], Problems]) -> Problems:
    from aiops_action.runbooks.model import ParamRef

    if isinstance(v, ParamRef):
        return value(ARG, v, path)
    if isinstance(v, Mapping):
        return [p for k, item in v.items() for p in _json(item, f"{path}.{k}", value)]
    if isinstance(v, list):
        return [p for i, item in enumerate(v) for p in _json(item, f"{path}[{i}]", value)]
    if isinstance(v, str):
        return value(TEXT, v, path)
    if v is None or isinstance(v, int | float | bool):
        return []
    return [(path, f"not a JSON value ({type(v).__name__})")]


def _script_extra(name: str, v: Any, value: Callable[[Slot, Any, str], Problems]) -> Problems:
    from aiops_action.runbooks.model import ParamRef

    path = f"arguments.{name}"
    if name == "cwd":
        return value(PATH, v, path)
    if name != "argv":
        return [(path, "not an argument of a script step (expected: argv, cwd)")]
    if not isinstance(v, list) or not v:
        return [(path, "expected a non-empty list: the program's absolute path, then its arguments")]
    if isinstance(v[0], ParamRef):
        return [(f"{path}[0]", "the program must be a literal absolute path, never a parameter")]
    found = value(PATH, v[0], f"{path}[0]")
    for i, item in enumerate(v[1:], start=1):
        found += value(ARG, item, f"{path}[{i}]")
    return found
