"""Executors of runbook steps, chosen by kind: Kubernetes, HTTP, sandboxed scripts; each with a dry run."""

from __future__ import annotations

from aiops_action.executors._protocol import Executor, Step, StepResult
from aiops_action.executors.http import HttpExecutor
from aiops_action.executors.script import ScriptExecutor

__all__ = ["Executor", "Executors", "HttpExecutor", "ScriptExecutor", "Step", "StepResult", "UnknownKindError"]


class UnknownKindError(KeyError):
    """No executor of a step's kind is configured."""


class Executors:
    """The executors a worker runs steps with, one per kind; a step goes to the one of its ``kind``.

    The Kubernetes executor (``aiops_action.executors.kubernetes.KubernetesExecutor``, the ``action`` extra) is
    built by the caller, from a kubeconfig, in-cluster or an explicit host, and passed in like the others.

    >>> import asyncio
    >>> executors = Executors(HttpExecutor())
    >>> executors.kinds
    ['http']
    >>> result = asyncio.run(executors.dry_run(Step("ping", "http", "GET", {"url": "https://example.org/health"})))
    >>> result.ok, result.summary
    (True, 'would send GET https://example.org/health')
    >>> asyncio.run(executors.execute(Step("x", "ftp", "get", {}))).summary
    "no executor for steps of kind 'ftp'; configured: http"
    """

    def __init__(self, *executors: Executor) -> None:
        self._by_kind: dict[str, Executor] = {}
        for executor in executors:
            if executor.kind in self._by_kind:
                raise ValueError(f"two executors of kind {executor.kind!r}")
            self._by_kind[executor.kind] = executor

    @property
    def kinds(self) -> list[str]:
        return sorted(self._by_kind)

    def executor_for(self, kind: str) -> Executor:
        """The executor of ``kind``; :class:`UnknownKindError` when none is configured."""
        try:
            return self._by_kind[kind]
        except KeyError:
            raise UnknownKindError(
                f"no executor for steps of kind {kind!r}; configured: {', '.join(self.kinds) or 'none'}"
            ) from None

    def close(self) -> None:
        """Release what the executors hold (the Kubernetes client's connections)."""
        for executor in self._by_kind.values():
            close = getattr(executor, "close", None)
            if callable(close):
                close()

    async def dry_run(self, step: Step) -> StepResult:
        """The dry run of ``step`` by its kind's executor; a kind with no executor is ``ok=False``."""
        try:
            executor = self.executor_for(step.kind)
        except UnknownKindError as exc:
            return StepResult(step=step.name, ok=False, dry_run=True, summary=str(exc.args[0]))
        return await executor.dry_run(step)

    async def execute(self, step: Step) -> StepResult:
        """``step`` run by its kind's executor; a kind with no executor is ``ok=False``."""
        try:
            executor = self.executor_for(step.kind)
        except UnknownKindError as exc:
            return StepResult(step=step.name, ok=False, dry_run=False, summary=str(exc.args[0]))
        return await executor.execute(step)
