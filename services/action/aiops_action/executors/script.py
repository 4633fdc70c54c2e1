"""Script steps run sandboxed: argv only (never a shell), a scrubbed environment, time, output and memory limits."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import resource
import shlex
import signal
import stat
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from aiops_action.executors._protocol import Step, StepResult

__all__ = ["ScriptExecutor"]

#: The whole environment a script gets: nothing of the worker's (tokens, URLs, proxies) is inherited.
_ENVIRONMENT = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
#: Linux refuses a single argument longer than this (MAX_ARG_STRLEN); checked before anything runs.
_MAX_ARGUMENT_BYTES = 128 * 1024
_MAX_ARGUMENTS = 1024
_CHUNK = 64 * 1024


class _InvalidScriptError(Exception):
    """A step whose command cannot run as given: becomes ``ok=False``."""


class ScriptExecutor:
    """Runs ``script`` steps (action ``run``; ``argv``, optionally ``cwd``) in their own process group.

    ``argv[0]`` is the absolute path of an executable file (under one of ``allowed_dirs`` when given); the other
    arguments are strings passed as they are, never through a shell. The process gets only ``PATH`` and ``LANG``,
    stdin from ``/dev/null``, a fresh temporary folder as working directory unless ``cwd`` names one, an address
    space of ``memory_bytes`` and CPU time of the step's timeout (``RLIMIT_AS``, ``RLIMIT_CPU``). Its stdout and
    stderr together are kept up to ``max_output_bytes`` (the rest is counted and dropped). When the process ends,
    or its time runs out, its whole process group is killed: nothing it started outlives the step. Exit code 0 is
    ``ok``. A dry run checks the executable and arguments and runs nothing.
    """

    kind = "script"

    def __init__(
        self,
        *,
        memory_bytes: int = 512 * 1024 * 1024,
        max_output_bytes: int = 64 * 1024,
        allowed_dirs: Sequence[Path] | None = None,
    ) -> None:
        self._memory_bytes = memory_bytes
        self._max_output_bytes = max_output_bytes
        self._allowed_dirs = [Path(d).resolve() for d in allowed_dirs] if allowed_dirs is not None else None

    async def dry_run(self, step: Step) -> StepResult:
        try:
            argv, cwd = self._command(step)
        except _InvalidScriptError as exc:
            return StepResult(step=step.name, ok=False, dry_run=True, summary=str(exc))
        return StepResult(
            step=step.name,
            ok=True,
            dry_run=True,
            summary=f"would run {shlex.join(argv)}"[:1000],
            output=self._limits_text(step, cwd),
            details={"argv": argv, "cwd": str(cwd) if cwd else None},
        )

    async def execute(self, step: Step) -> StepResult:
        try:
            argv, cwd = self._command(step)
        except _InvalidScriptError as exc:
            return StepResult(step=step.name, ok=False, dry_run=False, summary=str(exc))
        if cwd is not None:
            return await self._run(step, argv, cwd)
        with tempfile.TemporaryDirectory(prefix="aiops-script-") as scratch:
            return await self._run(step, argv, Path(scratch))

    async def _run(self, step: Step, argv: list[str], cwd: Path) -> StepResult:
        shown = shlex.join(argv)[:500]
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                cwd=cwd,
                env=dict(_ENVIRONMENT),
                start_new_session=True,  # its own process group, killed as a whole
                preexec_fn=_limits(self._memory_bytes, step.timeout_s),
                close_fds=True,
            )
        except OSError as exc:
            return StepResult(step=step.name, ok=False, dry_run=False, summary=f"cannot start {shown}: {exc}")
        kept = bytearray()
        total = 0

        async def read() -> None:
            nonlocal total
            assert process.stdout is not None
            while chunk := await process.stdout.read(_CHUNK):
                total += len(chunk)
                room = self._max_output_bytes - len(kept)
                if room > 0:
                    kept.extend(chunk[:room])

        reader = asyncio.ensure_future(read())
        timed_out = False
        try:
            await asyncio.wait_for(process.wait(), step.timeout_s)
        except TimeoutError:
            timed_out = True
        finally:
            # Kill the group whether the script ended or not: a child it left behind would hold the output pipe
            # open and go on running after the step has been reported.
            _kill_group(process.pid)
            if process.returncode is None:
                await process.wait()
            # A process that left the group (its own session) may still hold the pipe: stop reading, not wait.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(reader, 5.0)
        code = process.returncode
        assert code is not None
        details: dict[str, Any] = {
            "argv": argv,
            "exit_code": code,
            "timed_out": timed_out,
            "output_bytes": total,
            "output_dropped_bytes": total - len(kept),
        }
        output = kept.decode("utf-8", "replace")
        if timed_out:
            summary = f"{shown}: killed after {step.timeout_s:g}s (timeout)"
        elif code < 0:
            summary = f"{shown}: killed by {_signal_name(-code)}"
        else:
            summary = f"{shown}: exit code {code}"
        return StepResult(
            step=step.name,
            ok=code == 0 and not timed_out,
            dry_run=False,
            summary=summary,
            output=output,
            details=details,
        )

    def _command(self, step: Step) -> tuple[list[str], Path | None]:
        if step.action != "run":
            raise _InvalidScriptError(f"script: unknown action {step.action!r}; known: run")
        argv = step.arguments.get("argv")
        if isinstance(argv, str | bytes) or not isinstance(argv, Sequence) or not argv:
            raise _InvalidScriptError("script: argv must be a non-empty list of strings (no shell command line)")
        if len(argv) > _MAX_ARGUMENTS:
            raise _InvalidScriptError(f"script: more than {_MAX_ARGUMENTS} arguments")
        for i, argument in enumerate(argv):
            if not isinstance(argument, str):
                raise _InvalidScriptError(f"script: argument {i} is not a string: {argument!r}"[:300])
            if "\x00" in argument:
                raise _InvalidScriptError(f"script: argument {i} contains a NUL character")
            if len(argument.encode("utf-8", "surrogateescape")) > _MAX_ARGUMENT_BYTES:
                raise _InvalidScriptError(f"script: argument {i} is longer than {_MAX_ARGUMENT_BYTES} bytes")
        executable = Path(argv[0])
        if not executable.is_absolute():
            raise _InvalidScriptError(f"script: the program must be an absolute path, not {argv[0]!r}"[:300])
        resolved = executable.resolve()
        try:
            mode = resolved.stat().st_mode
        except OSError:
            raise _InvalidScriptError(f"script: no program at {argv[0]}") from None
        if not stat.S_ISREG(mode) or not os.access(resolved, os.X_OK):
            raise _InvalidScriptError(f"script: {argv[0]} is not an executable file")
        if self._allowed_dirs is not None and not any(resolved.is_relative_to(d) for d in self._allowed_dirs):
            raise _InvalidScriptError(f"script: {argv[0]} is outside the folders scripts may run from")
        cwd_argument = step.arguments.get("cwd")
        cwd: Path | None = None
        if cwd_argument is not None:
            if not isinstance(cwd_argument, str) or "\x00" in cwd_argument or not Path(cwd_argument).is_absolute():
                raise _InvalidScriptError(f"script: cwd must be an absolute path, not {cwd_argument!r}"[:300])
            cwd = Path(cwd_argument)
            if not cwd.is_dir():
                raise _InvalidScriptError(f"script: cwd {cwd_argument} is not a folder")
        return list(argv), cwd

    def _limits_text(self, step: Step, cwd: Path | None) -> str:
        return (
            f"argv: {shlex.join(step.arguments['argv'])}\n"
            f"cwd: {cwd or '(a new temporary folder)'}\n"
            f"environment: {' '.join(f'{k}={v}' for k, v in _ENVIRONMENT.items())}\n"
            f"limits: {step.timeout_s:g}s, {self._memory_bytes // (1024 * 1024)} MiB address space, "
            f"{self._max_output_bytes} bytes of output kept"
        )


def _limits(memory_bytes: int, timeout_s: float) -> Callable[[], None]:
    cpu_s = max(1, math.ceil(timeout_s))

    def apply() -> None:  # in the child, between fork and exec: only async-signal-safe work
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        # SIGXCPU at the soft limit, SIGKILL one second later should the script catch it.
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))

    return apply


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
