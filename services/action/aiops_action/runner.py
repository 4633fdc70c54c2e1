"""Running approved executions: steps journaled one by one, verification against the TSDB, rollback.

Restart-safe. Every step is written ``started`` before its executor is called and ``ok``/``failed`` after, each
write against the version read, so a worker that stopped leaves a record that says exactly how far it got. A
running execution is held by one worker under a lease it renews; one whose lease ran out was left by a worker
that stopped, and the next sweep takes it over: a step left ``started`` is in doubt (it may or may not have
taken effect) and is never run again (the execution is ``interrupted`` and escalates); otherwise it goes on with
the next step. Two workers can never both claim an execution: a claim is a versioned write.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import structlog
from aiops_common.approvals import expire, transition
from aiops_common.documents import VersionConflictError
from aiops_common.schemas import (
    ExecutionRecord,
    ExecutionStatus,
    StepPhase,
    StepRecord,
    StepState,
)
from aiops_common.topology import millis
from aiops_common.tsdb import TimeSeriesStore
from prometheus_client import Counter, Gauge

from aiops_action.executions import ExecutionBook
from aiops_action.executors import Executors
from aiops_action.executors._protocol import Step, StepResult
from aiops_action.outputs import Outputs
from aiops_action.verification import Outcome, assess

__all__ = ["Runner"]

log = structlog.get_logger(__name__)

OUTCOMES = Counter("aiops_action_executions_total", "Executions that ended, by status", ["status"])
STEPS = Counter("aiops_action_steps_total", "Steps run, by phase and result", ["phase", "result"])
RUNNING = Gauge("aiops_action_running_executions", "Executions this worker is running now")
SWEEP_ERRORS = Counter("aiops_action_sweep_errors_total", "Sweeps that could not finish, by part", ["part"])

STEP_GRACE_S = 10.0
"""Beyond a step's own timeout, before the runner gives up on its executor."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


class _Held:
    """An execution this worker runs: the record and version last written, one write at a time."""

    def __init__(self, record: ExecutionRecord, version: int) -> None:
        self.record = record
        self.version = version
        self.lock = asyncio.Lock()


class Runner:
    def __init__(
        self,
        book: ExecutionBook,
        executors: Executors,
        tsdb: TimeSeriesStore | None,
        outputs: Outputs | None,
        *,
        lease_s: float,
        instance: str,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.book = book
        self.executors = executors
        self.tsdb = tsdb
        self.outputs = outputs
        self.lease_s = lease_s
        self.instance = instance
        self.clock = clock
        self.tasks: dict[str, asyncio.Task[None]] = {}

    # -- taking executions on -----------------------------------------------------------------------------------

    async def start(self, execution_id: str) -> bool:
        """Claim an approved execution and run it in the background; False when it is not approved (any more) or
        another worker claimed it first."""
        if execution_id in self.tasks:
            return False
        found = await self.book.get(execution_id)
        if found is None or found[0].status is not ExecutionStatus.APPROVED:
            return False
        record, version = found
        now = self.clock()
        claimed = transition(
            record,
            ExecutionStatus.RUNNING,
            self.instance,
            "started",
            now,
            owner=self.instance,
            lease_until=self._lease(now),
        )
        return await self._claim(claimed, version, "execution.started", f"{record.runbook_id} started")

    async def _claim(self, claimed: ExecutionRecord, version: int, action: str, message: str) -> bool:
        try:
            version = await self.book.save(claimed, version)
        except VersionConflictError:
            return False
        await self.book.audit(claimed, action, message, {"owner": self.instance, "phase": claimed.phase.value})
        held = _Held(claimed, version)
        task = asyncio.create_task(self._run(held), name=f"execution-{claimed.id}")
        self.tasks[claimed.id] = task
        RUNNING.set(len(self.tasks))

        def done(_: asyncio.Task[None]) -> None:
            self.tasks.pop(claimed.id, None)
            RUNNING.set(len(self.tasks))

        task.add_done_callback(done)
        return True

    def _lease(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.lease_s)

    async def stop(self) -> None:
        """Stop running (a shutdown): the steps in flight are left ``started``, in doubt, for the next worker."""
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # -- running ------------------------------------------------------------------------------------------------

    async def _write(self, held: _Held, record: ExecutionRecord, *, publish: bool = True) -> None:
        async with held.lock:
            held.version = await self.book.save(record, held.version, publish=publish)
            held.record = record

    async def _renew(self, held: _Held) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)
            try:
                async with held.lock:
                    record = held.record.model_copy(update={"lease_until": self._lease(self.clock())})
                    held.version = await self.book.save(record, held.version, publish=False)
                    held.record = record
            except VersionConflictError:
                return  # taken over: the step's own write will find out and stop
            except Exception as exc:  # the store away for a moment: the lease is long enough to try again
                log.warning("lease not renewed", execution_id=held.record.id, error=repr(exc))

    async def _run(self, held: _Held) -> None:
        renew = asyncio.create_task(self._renew(held))
        try:
            await self._drive(held)
        except VersionConflictError:
            # another worker took it over (this one's lease ran out while it was stalled): it is theirs now
            log.warning("execution taken over by another worker", execution_id=held.record.id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("execution failed unexpectedly", execution_id=held.record.id)
            with contextlib.suppress(Exception):
                await self._finish(held, ExecutionStatus.FAILED, f"the runner failed: {type(exc).__name__}: {exc}")
        finally:
            renew.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await renew

    async def _drive(self, held: _Held) -> None:
        if held.record.phase is StepPhase.STEPS:
            failed = await self._run_steps(held, StepPhase.STEPS)
            if failed is None:
                now = self.clock()
                verification = held.record.verification
                if verification is not None:
                    verification = verification.model_copy(update={"started_at": now, "detail": "watching the series"})
                record = transition(
                    held.record,
                    ExecutionStatus.VERIFYING,
                    self.instance,
                    "every step ran; verifying",
                    now,
                    verification=verification,
                    owner="",
                    lease_until=None,
                )
                await self._write(held, record)
                await self.book.audit(record, "execution.steps_done", "every step ran; verification started")
                return
            error = f"step {failed.name!r} failed: {failed.summary}"
            if not held.record.rollback:
                await self._finish(held, ExecutionStatus.FAILED, error)
                return
            await self._write(held, held.record.model_copy(update={"phase": StepPhase.ROLLBACK, "error": error}))
            await self.book.audit(held.record, "execution.rollback_started", f"{error}; rolling back")
        failed = await self._run_steps(held, StepPhase.ROLLBACK)
        if failed is None:
            await self._finish(held, ExecutionStatus.ROLLED_BACK, held.record.error or "rolled back")
        else:
            await self._finish(
                held,
                ExecutionStatus.ROLLBACK_FAILED,
                f"{held.record.error}; rollback step {failed.name!r} failed: {failed.summary}",
            )

    async def _run_steps(self, held: _Held, phase: StepPhase) -> StepRecord | None:
        """Run the phase's steps not run yet, in order; the first that failed, or None."""
        field = "steps" if phase is StepPhase.STEPS else "rollback"
        for index in range(len(getattr(held.record, field))):
            step: StepRecord = getattr(held.record, field)[index]
            if step.state is StepState.OK:
                continue  # ran before a restart
            if step.state is not StepState.PENDING:
                return step
            started = step.model_copy(update={"state": StepState.STARTED, "started_at": self.clock()})
            await self._write(held, self._with_step(held.record, field, index, started))
            result = await self._execute(started)
            STEPS.labels(phase.value, "ok" if result.ok else "failed").inc()
            ended = started.model_copy(
                update={
                    "state": StepState.OK if result.ok else StepState.FAILED,
                    "summary": result.summary,
                    "output": result.output,
                    "details": dict(result.details),
                    "finished_at": self.clock(),
                }
            )
            await self._write(held, self._with_step(held.record, field, index, ended))
            await self.book.audit(
                held.record,
                f"execution.{'step' if phase is StepPhase.STEPS else 'rollback_step'}",
                f"{step.name}: {result.summary}",
                {"step": step.name, "ok": result.ok, "output": result.output[:4000], "details": dict(result.details)},
            )
            if not result.ok:
                return ended
        return None

    @staticmethod
    def _with_step(record: ExecutionRecord, field: str, index: int, step: StepRecord) -> ExecutionRecord:
        steps = list(getattr(record, field))
        steps[index] = step
        return record.model_copy(update={field: steps})

    async def _execute(self, step: StepRecord) -> StepResult:
        resolved = Step(
            name=step.name, kind=step.kind, action=step.action, arguments=step.arguments, timeout_s=step.timeout_s
        )
        try:
            async with asyncio.timeout(step.timeout_s + STEP_GRACE_S):
                return await self.executors.execute(resolved)
        except TimeoutError:
            return StepResult(step.name, ok=False, dry_run=False, summary=f"no answer within {step.timeout_s:g} s")
        except Exception as exc:  # an executor's bug is a failed step, not a stopped runner
            log.exception("executor raised", step=step.name)
            return StepResult(
                step.name, ok=False, dry_run=False, summary=f"executor error: {type(exc).__name__}: {exc}"
            )

    async def _finish(self, held: _Held, status: ExecutionStatus, note: str) -> None:
        now = self.clock()
        record = transition(held.record, status, self.instance, note, now, error=note, owner="", lease_until=None)
        await self._write(held, record)
        await self._ended(record, note, now)

    async def _ended(self, record: ExecutionRecord, note: str, now: datetime) -> None:
        OUTCOMES.labels(record.status.value).inc()
        await self.book.audit(record, f"execution.{record.status.value}", note)
        if self.outputs is not None:
            await self.outputs.outcome(record, now, note)

    # -- the sweep: expiry, takeovers, verification ---------------------------------------------------------------

    async def sweep(self) -> None:
        """Run periodically by every worker: expire pending approvals, start approved executions nobody runs, take
        over those whose worker stopped, and check the ones being verified. Each part on its own: one failing
        (a store away) does not keep the others from running."""
        for part, do in (
            ("expire", self._expire_pending),
            ("start", self._start_approved),
            ("recover", self._recover_orphans),
            ("verify", self._verify_all),
        ):
            try:
                await do()
            except Exception as exc:
                SWEEP_ERRORS.labels(part).inc()
                log.warning("sweep part failed", part=part, error=repr(exc))

    async def _expire_pending(self) -> None:
        now = self.clock()
        for record, version in await self.book.query(status=ExecutionStatus.PENDING_APPROVAL):
            expired = expire(record, now)
            if expired is None:
                continue
            try:
                await self.book.save(expired, version)
            except VersionConflictError:
                continue  # decided meanwhile
            await self._ended(expired, expired.history[-1].note, now)

    async def _start_approved(self) -> None:
        for record, _ in await self.book.query(status=ExecutionStatus.APPROVED):
            await self.start(record.id)

    async def _recover_orphans(self) -> None:
        now = self.clock()
        for record, version in await self.book.query(status=ExecutionStatus.RUNNING):
            if record.id in self.tasks or (record.lease_until is not None and record.lease_until > now):
                continue
            await self.recover(record, version, now)

    async def recover(self, record: ExecutionRecord, version: int, now: datetime) -> None:
        """Take over an execution whose worker stopped: interrupted when a step is in doubt, else go on."""
        for field in ("steps", "rollback"):
            for index, step in enumerate(getattr(record, field)):
                if step.state is not StepState.STARTED:
                    continue
                note = (
                    f"the worker running it ({record.owner or 'unknown'}) stopped during {field} step {step.name!r}:"
                    " its outcome is unknown and it is not run again; a person must check"
                )
                unknown = step.model_copy(update={"state": StepState.UNKNOWN, "summary": "outcome unknown"})
                ended = transition(
                    self._with_step(record, field, index, unknown),
                    ExecutionStatus.INTERRUPTED,
                    self.instance,
                    note,
                    now,
                    error=note,
                    owner="",
                    lease_until=None,
                )
                try:
                    await self.book.save(ended, version)
                except VersionConflictError:
                    return
                await self._ended(ended, note, now)
                return
        claimed = record.model_copy(update={"owner": self.instance, "lease_until": self._lease(now), "updated_at": now})
        await self._claim(
            claimed,
            version,
            "execution.resumed",
            f"taken over from {record.owner or 'a stopped worker'}; no step was in doubt",
        )

    async def _verify_all(self) -> None:
        for record, version in await self.book.query(status=ExecutionStatus.VERIFYING):
            if record.id not in self.tasks:
                await self.verify(record, version)

    async def verify(self, record: ExecutionRecord, version: int) -> None:
        check = record.verification
        now = self.clock()
        if check is None or check.started_at is None:
            return
        deadline = check.started_at + timedelta(seconds=check.within_s)
        matchers = {"__name__": check.series, **check.match}
        try:
            if self.tsdb is None:
                raise RuntimeError("no TSDB is configured")
            found = await self.tsdb.query_range(matchers, millis(check.started_at), millis(now))
            series = [(s.key, s.points()) for s in found]
        except Exception as exc:
            if now < deadline:
                log.warning(
                    "verification could not read the TSDB; trying again", execution_id=record.id, error=repr(exc)
                )
                return
            series, unreadable = [], f"; the TSDB could not be read: {type(exc).__name__}"
        else:
            unreadable = ""
        verdict = assess(
            series,
            name=check.series,
            lower=check.lower,
            upper=check.upper,
            for_s=check.for_s,
            started_ms=millis(check.started_at),
            deadline_ms=millis(deadline),
            now_ms=millis(now),
        )
        since = None
        if verdict.inside_since_ms is not None:
            since = datetime.fromtimestamp(verdict.inside_since_ms / 1000, UTC)
        checked = check.model_copy(
            update={
                "checked_at": now,
                "last_value": verdict.last_value,
                "inside_since": since,
                "detail": verdict.detail + unreadable,
                "recovered": {Outcome.RECOVERED: True, Outcome.NOT_RECOVERED: False}.get(verdict.outcome),
            }
        )
        if verdict.outcome is Outcome.WAITING:
            with contextlib.suppress(VersionConflictError):
                await self.book.save(record.model_copy(update={"verification": checked}), version, publish=False)
            return
        if verdict.outcome is Outcome.RECOVERED:
            done = transition(
                record, ExecutionStatus.SUCCEEDED, self.instance, verdict.detail, now, verification=checked
            )
            try:
                await self.book.save(done, version)
            except VersionConflictError:
                return
            await self._ended(done, verdict.detail, now)
            if self.outputs is not None:
                await self.outputs.mitigate(done, now, f"{done.runbook_id} ({done.id}) verified: {verdict.detail}")
            return
        note = f"not recovered: {checked.detail}"
        if not record.rollback:
            failed = transition(
                record, ExecutionStatus.FAILED, self.instance, note, now, verification=checked, error=note
            )
            try:
                await self.book.save(failed, version)
            except VersionConflictError:
                return
            await self._ended(failed, note, now)
            return
        rolling = transition(
            record,
            ExecutionStatus.RUNNING,
            self.instance,
            f"{note}; rolling back",
            now,
            verification=checked,
            error=note,
            phase=StepPhase.ROLLBACK,
            owner=self.instance,
            lease_until=self._lease(now),
        )
        await self._claim(rolling, version, "execution.verification_failed", f"{note}; rolling back")
