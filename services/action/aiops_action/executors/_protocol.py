"""What every executor takes and gives: a runbook step with its parameters resolved, and the step's result."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = ["Executor", "Step", "StepResult"]


@dataclass(frozen=True, slots=True)
class Step:
    """One runbook step, every parameter resolved to a checked value (nothing here is a template).

    ``kind`` picks the executor. ``action`` and ``arguments`` by kind:

    - ``kubernetes``: ``scale`` (namespace, deployment, replicas), ``rollout_restart`` (namespace, deployment),
      ``rollback`` (namespace, deployment; to the previous revision), ``cordon`` (node);
    - ``http``: the method (``GET``, ``POST``, ...) with url, headers (mapping), body (JSON value, optional);
    - ``script``: ``run`` with argv (list of strings, run without a shell), and optionally cwd.
    """

    name: str
    kind: str
    action: str
    arguments: Mapping[str, Any]
    timeout_s: float = 60.0


@dataclass(frozen=True, slots=True)
class StepResult:
    """What a step did (or, for a dry run, would do): ``summary`` one line for people, ``output`` bounded text
    (a script's output, an HTTP answer), ``details`` what a rollback or an audit needs (e.g. the replicas or the
    revision before the change)."""

    step: str
    ok: bool
    dry_run: bool
    summary: str
    output: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Executor(Protocol):
    """Runs steps of one ``kind``; never raises for a failed step (``ok=False`` says why), only for a bug."""

    kind: str

    async def dry_run(self, step: Step) -> StepResult:
        """What ``execute`` would do, checked as far as possible without changing anything."""

    async def execute(self, step: Step) -> StepResult: ...
