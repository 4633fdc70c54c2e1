"""Agent: ``incidents`` -> ``rca.results``, and each result onto its incident in the document store.

An incident is analysed when it is new, and again when it gains members (more members, or a service
it did not have, than at its last analysis); a resolved incident, or one merged into another, is not.
Revisions come in storms while the correlator grows an incident, and its first revision comes before
the fault's windows are in the TSDB, so each incident's newest revision is held (``debounce.py``)
until it has been quiet for ``rca_debounce_s``, or at the latest ``rca_debounce_max_s`` after the
first revision held; a new incident's first analysis is thus at least ``rca_debounce_s`` after it
opened. A record's offset moves on only once the revision it stands for has been analysed and its
result acknowledged by the broker (at-least-once): what is held when the process dies is read again.

Restart-safe: a result's id is its incident revision's, and before it analyses (and after every
rebalance) the agent reads what ``rca.results`` already holds, so a revision analysed before a
restart is not analysed (nor published) again. What it cannot know after a restart is how many
members an incident had at its last analysis, so a newer revision of it is analysed once.

Never stops: a source that is down makes the case (and the result) degraded, the engine failing on
a case gives a degraded result naming the error, and a document store that is down is retried with
backoff, then counted as dropped; the result is on ``rca.results`` either way.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import faust
import numpy as np
import structlog
from aiops_common.agent_loop import AgentMeter
from aiops_common.broker.reader import read_to_end
from aiops_common.documents import DocumentStore, VersionConflictError
from aiops_common.schemas import (
    IncidentRecord,
    IncidentStatus,
    RcaResult,
    RcaStatus,
    SchemaError,
    decode_envelope,
    rca_result_id,
)
from aiops_common.topics import Topics, declare
from aiops_common.topology import from_millis
from prometheus_client import Counter, Gauge, Histogram

from aiops_rca.agents.debounce import Debouncer
from aiops_rca.case import Case
from aiops_rca.engine import Analysis, analyze
from aiops_rca.feedback_priors import CausePriors
from aiops_rca.gather import Sources, gather_case
from aiops_rca.settings import RcaSettings

__all__ = ["RETRY_DELAYS_S", "RootCause", "incident_summary", "install", "result_of"]

log = structlog.get_logger(__name__)

ANALYSIS_SECONDS = Histogram(
    "aiops_rca_analysis_seconds",
    "Time of one incident's analysis, by stage (gather: reading the stores; analyze: the engine)",
    ["stage"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
RESULTS = Counter("aiops_rca_results_total", "RCA results published, by status", ["status"])
SKIPPED = Counter(
    "aiops_rca_skipped_revisions_total",
    "Incident revisions not analysed, by reason (analysed already, no new members, resolved, merged, superseded)",
    ["reason"],
)
HELD = Gauge(
    "aiops_rca_held_incidents", "Incidents whose newest revision waits for its debounce (not acknowledged yet)"
)

BATCH = 500
TOP_ON_INCIDENT = 3
"""Causes copied onto the incident document (the whole result is in ``rca_results``)."""
RETRY_DELAYS_S: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0)
"""Waits between tries of a result's document writes: about half a minute of a store being down is ridden out."""
LOAD_TIMEOUT_S = 120.0
TICK_S = 0.25
"""How often held revisions are looked at (at most; a quarter of the debounce when that is shorter)."""
WRITE_BEHIND = 64
"""Analysed batches that may wait for the document store; past it the analysis waits too (the bound)."""


@dataclass(frozen=True, slots=True)
class _Write:
    """An analysed batch to store, and the records to acknowledge once it is."""

    pairs: list[tuple[RcaResult, IncidentRecord]]
    tokens: list[Any]
    ack: Callable[[Any], Awaitable[object]]


def result_of(
    incident: IncidentRecord, case: Case, analysis: Analysis, elapsed_ms: float, analyzed_at: datetime
) -> RcaResult:
    """The published record of one analysis: degraded when a source was missing and the analysis otherwise held,
    or when it found nothing moved without the series to tell."""
    missing = list(dict.fromkeys([*case.missing, *analysis.missing]))
    status = analysis.status
    if missing and status == RcaStatus.OK:
        status = RcaStatus.DEGRADED
    elif status == RcaStatus.NO_ANOMALY and any(m.startswith("tsdb") for m in missing):
        status = RcaStatus.DEGRADED  # "nothing moved" is not known when the series could not be read
    onset = from_millis(analysis.onset_ms) if analysis.onset_ms is not None else incident.started_at
    return RcaResult(
        id=rca_result_id(incident.id, incident.revision),
        incident_id=incident.id,
        incident_revision=incident.revision,
        at=incident.updated_at,
        analyzed_at=analyzed_at,
        status=status,
        missing=missing,
        onset=onset,
        services=case.all_services(),
        causes=analysis.causes,
        summary=analysis.summary,
        elapsed_ms=elapsed_ms,
    )


def incident_summary(result: RcaResult) -> dict[str, Any]:
    """What the incident document carries of its analysis (field ``rca``): the id, revision, status, top causes."""
    return {
        "id": result.id,
        "revision": result.incident_revision,
        "status": result.status.value,
        "analyzed_at": result.analyzed_at.isoformat(),
        "summary": result.summary,
        "missing": list(result.missing),
        "causes": [
            {"service": c.service, "probability": c.probability, "kind": c.kind.value, "rule": c.rule}
            for c in result.causes[:TOP_ON_INCIDENT]
        ],
    }


async def attach_to_incident(store: DocumentStore, incident: IncidentRecord, summary: dict[str, Any]) -> bool:
    """Set the incident document's ``rca`` field, unless it holds a newer revision's; False when it does.

    Written against the stored version, so an incident revision the archive writes meanwhile is not
    overwritten (the archive carries ``rca`` over into the revisions it writes). An incident not archived
    yet is written with this revision's body.
    """
    for _ in range(10):
        stored = await store.get("incidents", incident.id)
        if stored is None:
            body: dict[str, Any] = {**incident.document(), "rca": summary}
            expected = 0
        else:
            current = stored.body.get("rca")
            if isinstance(current, dict) and int(current.get("revision", 0)) > summary["revision"]:
                return False
            body = {**stored.body, "rca": summary}
            expected = stored.version
        try:
            await store.upsert("incidents", incident.id, body, expected_version=expected)
            return True
        except VersionConflictError:
            continue  # the archive wrote a revision meanwhile: read it again
    raise VersionConflictError("incidents", incident.id, -1, -1)


class RootCause:
    """The agent's state: the highest revision analysed per incident, and each incident's shape then."""

    def __init__(
        self,
        settings: RcaSettings,
        sources: Sources,
        documents: DocumentStore | None,
        results: faust.TopicT | None,
        priors: CausePriors | None = None,
        retry_delays_s: Sequence[float] = RETRY_DELAYS_S,
    ) -> None:
        self.settings = settings
        self.sources = sources
        self.documents = documents
        self.results = results
        self.priors = priors
        self.retry_delays_s = retry_delays_s
        self.meter = AgentMeter("root_cause")
        self.analysed: dict[str, int] = {}
        """Incident id -> the highest revision with a result on ``rca.results``."""
        self.shapes: dict[str, tuple[int, frozenset[str]]] = {}
        """Incident id -> (members, services) at its last analysis by this process."""
        self.stale = True
        """``analysed`` must be read from ``rca.results`` before the next batch (start, rebalance)."""
        self.pending: Debouncer[Any] = Debouncer(settings.rca_debounce_s, settings.rca_debounce_max_s)
        """Each incident's newest revision not analysed yet, with the records to acknowledge once it is."""
        self.lock = asyncio.Lock()
        self.writes: asyncio.Queue[_Write] | None = None
        """Set by the agent: analysed batches waiting to be stored and acknowledged (:meth:`write_behind`). None:
        :meth:`flush` stores and acknowledges before it returns."""

    # -- what is analysed -----------------------------------------------------------------------------

    def absorb(self, value: bytes) -> None:
        """Take one record of ``rca.results`` into ``analysed``."""
        _, body = decode_envelope(value, RcaResult.schema_name, (RcaResult.schema_version,))
        incident, revision = body.get("incident_id"), body.get("incident_revision")
        if isinstance(incident, str) and isinstance(revision, int):
            self.analysed[incident] = max(revision, self.analysed.get(incident, 0))

    async def load(self) -> None:
        """Read every result on ``rca.results`` into ``analysed``."""
        found = 0

        def take(value: bytes) -> None:
            nonlocal found
            try:
                self.absorb(value)
                found += 1
            except SchemaError as exc:
                self.meter.dropped("undecodable_result", str(exc))

        await read_to_end(
            self.settings.require_broker_url(), Topics.RCA_RESULTS, self.settings.topic_prefix, take, LOAD_TIMEOUT_S
        )
        self.stale = False
        log.info("rca results read", results=found, incidents=len(self.analysed))

    def wanted(self, incident: IncidentRecord) -> str:
        """Why this revision is not analysed; empty when it is."""
        if incident.merged_into is not None:
            return "merged"
        if incident.status == IncidentStatus.RESOLVED:
            return "resolved"
        if incident.revision <= self.analysed.get(incident.id, 0):
            return "analysed"
        shape = self.shapes.get(incident.id)
        if shape is not None:
            members, services = shape
            if len(incident.members) <= members and set(incident.services) <= services:
                return "no_new_members"
        return ""

    def choose(self, values: list[bytes]) -> list[IncidentRecord]:
        """The newest revision of each incident in a batch, among those to analyse."""
        newest: dict[str, IncidentRecord] = {}
        for value in values:
            try:
                incident = IncidentRecord.decode(value)
            except SchemaError as exc:
                self.meter.dropped("undecodable", str(exc))
                continue
            kept = newest.get(incident.id)
            if kept is None or incident.revision > kept.revision:
                if kept is not None:
                    SKIPPED.labels("superseded").inc()
                newest[incident.id] = incident
            else:
                SKIPPED.labels("superseded").inc()
        return self.keep(list(newest.values()))

    def keep(self, newest: list[IncidentRecord]) -> list[IncidentRecord]:
        """Those of the incidents' newest revisions to analyse."""
        chosen = []
        for incident in newest:
            reason = self.wanted(incident)
            if reason:
                SKIPPED.labels(reason).inc()
                if reason in ("merged", "resolved"):  # nothing more will be analysed: forget its shape
                    self.shapes.pop(incident.id, None)
                continue
            chosen.append(incident)
        return chosen

    # -- one analysis ---------------------------------------------------------------------------------

    async def analyse(self, incident: IncidentRecord) -> RcaResult:
        """Gather and analyse one incident revision; never raises."""
        started = time.perf_counter()
        try:
            case = await gather_case(incident, self.sources, self.settings)
        except Exception as exc:  # gathering is built not to raise; should it, the result says so
            self.meter.dropped("gather_error", repr(exc))
            case = Case(ts_ms=np.zeros(0, dtype=np.int64), series={}, services=list(incident.services))
            case.missing.append(f"gather: {type(exc).__name__}: {exc}")
        gathered = time.perf_counter()
        ANALYSIS_SECONDS.labels("gather").observe(gathered - started)
        try:
            # In a thread: the engine is CPU-bound for up to seconds, the worker's loop must keep heartbeating.
            analysis = await asyncio.to_thread(analyze, case, self.settings.config())
        except Exception as exc:  # a case the engine cannot take: a degraded result naming the error
            self.meter.dropped("engine_error", f"{incident.id}@{incident.revision}: {exc!r}")
            analysis = Analysis(
                causes=[],
                status=RcaStatus.DEGRADED,
                onset_ms=case.onset_ms,
                summary="the analysis failed; see missing",
                missing=[f"engine: {type(exc).__name__}: {exc}"],
            )
        done = time.perf_counter()
        ANALYSIS_SECONDS.labels("analyze").observe(done - gathered)
        return result_of(incident, case, analysis, (done - started) * 1000, datetime.now(UTC))

    async def publish(self, results: list[RcaResult]) -> None:
        """Send the results keyed by incident id and wait for the broker to acknowledge every one."""
        if self.results is None or not results:
            return
        futures = [await self.results.send(key=r.incident_id.encode(), value=r.encode(), force=True) for r in results]
        await asyncio.gather(*futures)
        self.meter.sent(len(results))

    async def store(self, pairs: Sequence[tuple[RcaResult, IncidentRecord]]) -> int:
        """Write each result to ``rca_results`` and onto its incident, retrying while the store is down; how
        many were written. One retry budget for the whole batch, so a store that is down holds the agent
        about half a minute per batch, not per result."""
        if self.documents is None:
            self.meter.dropped("no_document_store", "the document store could not be opened", n=len(pairs))
            return 0
        documents = self.documents
        pending = list(pairs)
        for attempt in range(len(self.retry_delays_s) + 1):
            try:
                while pending:
                    result, incident = pending[0]
                    await documents.upsert("rca_results", result.id, result.document())
                    await attach_to_incident(documents, incident, incident_summary(result))
                    pending.pop(0)
                return len(pairs)
            except ValueError as exc:  # the store refused this body: retrying cannot help; the others go on
                self.meter.dropped("unstorable", repr(exc))
                pending.pop(0)
                continue
            except Exception as exc:  # the store is down: wait and try again
                if attempt == len(self.retry_delays_s):
                    self.meter.dropped("store_unavailable", f"{type(exc).__name__}: {exc}", n=len(pending))
                    return len(pairs) - len(pending)
                log.warning(
                    "document store unavailable; retrying",
                    error=f"{type(exc).__name__}: {exc}",
                    attempt=attempt + 1,
                    retry_in_s=self.retry_delays_s[attempt],
                )
                await asyncio.sleep(self.retry_delays_s[attempt])
        self.meter.dropped("store_unavailable", "retries spent", n=len(pending))
        return len(pairs) - len(pending)

    async def handle(self, values: list[bytes]) -> list[RcaResult]:
        """One batch of ``incidents`` at once (no debounce): analyse what is wanted, publish, remember, store."""
        if self.stale:
            await self.load()
        chosen = self.choose(values)
        results = await self.handle_newest(chosen)
        await self.store(list(zip(results, chosen, strict=True)))
        return results

    def hold(self, records: Sequence[tuple[bytes, Any]], now_s: float) -> list[Any]:
        """Hold each record's incident revision until its debounce is over; the tokens of records that cannot be
        decoded (to acknowledge at once: nothing will be analysed of them)."""
        undecodable = []
        for value, token in records:
            try:
                incident = IncidentRecord.decode(value)
            except SchemaError as exc:
                self.meter.dropped("undecodable", str(exc))
                undecodable.append(token)
                continue
            self.pending.add(incident, token, now_s)
        HELD.set(len(self.pending))
        return undecodable

    async def flush(self, ack: Callable[[Any], Awaitable[object]], now_s: float | None = None) -> list[RcaResult]:
        """Analyse the held revisions whose debounce is over, then acknowledge their records (``ack``); a failure
        (the broker refusing a publish, ``rca.results`` unreadable) is retried here until it goes through."""
        async with self.lock:
            due = self.pending.due(time.monotonic() if now_s is None else now_s)
            HELD.set(len(self.pending))
            if not due:
                return []
            SKIPPED.labels("superseded").inc(sum(h.superseded for h in due))
            for attempt in itertools.count():
                try:
                    if self.stale:
                        await self.load()
                    chosen = self.keep([h.incident for h in due])
                    results = await self.handle_newest(chosen)
                    break
                except Exception as exc:
                    wait_s = RETRY_DELAYS_S[min(attempt, len(RETRY_DELAYS_S) - 1)]
                    log.error("rca analysis failed; retrying", error=repr(exc), attempt=attempt + 1, retry_in_s=wait_s)
                    await asyncio.sleep(wait_s)
        write = _Write(list(zip(results, chosen, strict=True)), [t for held in due for t in held.tokens], ack)
        if self.writes is None:
            await self.store_and_acknowledge(write)
        else:
            await self.writes.put(write)  # waits while WRITE_BEHIND batches are already waiting: the bound
        return results

    async def store_and_acknowledge(self, write: _Write) -> None:
        await self.store(write.pairs)
        for token in write.tokens:
            await write.ack(token)

    async def write_behind(self) -> None:
        """Store analysed batches and acknowledge their records, in order, apart from the analysis.

        The results are on ``rca.results`` already; a document store that is locked or down holds these writes
        (each with its retry budget, at most ``WRITE_BEHIND`` batches waiting), not the analysis of the revisions
        that come meanwhile. Records are acknowledged only once their batch was stored or counted as dropped.
        """
        assert self.writes is not None
        while True:
            write = await self.writes.get()
            try:
                await self.store_and_acknowledge(write)
            except Exception as exc:  # an acknowledgement that failed: the records are read again after a restart
                log.error("rca store or acknowledgement failed", error=repr(exc))
            finally:
                self.writes.task_done()

    async def handle_newest(self, chosen: list[IncidentRecord]) -> list[RcaResult]:
        """Analyse these incident revisions, publish, remember (the caller stores them). The results published."""
        results = []
        for incident in chosen:
            with self.meter.timed():
                results.append(await self.analyse(incident))
        await self.publish(results)
        for incident, result in zip(chosen, results, strict=True):
            self.analysed[incident.id] = incident.revision
            self.shapes[incident.id] = (len(incident.members), frozenset(incident.services))
            RESULTS.labels(result.status.value).inc()
            if self.priors is not None:
                self.priors.note_result(result)
            top = result.top
            log.info(
                "incident analysed",
                incident=incident.id,
                revision=incident.revision,
                status=result.status.value,
                top=top.service if top else None,
                probability=round(top.probability, 3) if top else None,
                missing=result.missing,
                elapsed_ms=round(result.elapsed_ms, 1),
            )
        return results


def install(
    app: faust.App,
    settings: RcaSettings,
    sources: Sources,
    documents: DocumentStore | None,
    priors: CausePriors | None = None,
) -> RootCause:
    source = declare(app, Topics.INCIDENTS, settings.topic_prefix)
    results = declare(app, Topics.RCA_RESULTS, settings.topic_prefix)
    agent = RootCause(settings, sources, documents, results, priors)

    async def on_assigned(*args: Any, **kwargs: Any) -> None:
        # Another worker may have published results while this one did not hold the partition.
        agent.stale = True

    async def on_revoked(*args: Any, **kwargs: Any) -> None:
        # Held records of a partition taken away are not acknowledged: whoever holds it now reads them again
        # from the committed offset (this worker too, should it get the partition back).
        revoked = next((a for a in (*args, *kwargs.values()) if isinstance(a, set | frozenset)), None)
        if revoked is None:
            dropped = len(agent.pending)
            agent.pending.held.clear()
        else:
            dropped = agent.pending.drop_where(lambda event: event.message.tp in revoked)
        if dropped:
            log.info("held incident revisions of revoked partitions dropped", incidents=dropped)

    app.on_partitions_assigned.connect(on_assigned)
    app.on_partitions_revoked.connect(on_revoked)
    tick_s = max(0.01, min(TICK_S, settings.rca_debounce_s / 4))

    @app.agent(source, name="root_cause")
    async def run(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        async def flush_when_due() -> None:
            # Held revisions fall due while nothing arrives, so they are looked at on a clock of their own.
            while True:
                await asyncio.sleep(tick_s)
                try:
                    await agent.flush(stream.ack)
                except Exception as exc:  # an acknowledgement that failed: the records are read again after a restart
                    log.error("rca flush failed", error=repr(exc))

        agent.writes = asyncio.Queue(maxsize=WRITE_BEHIND)
        writer = asyncio.create_task(agent.write_behind())
        ticker = asyncio.create_task(flush_when_due())
        try:
            # Records are acknowledged by hand, once the revision they stand for was analysed: their offsets
            # are committed only up to the first record not acknowledged yet.
            # noack_take is the concrete stream's (it yields events, to acknowledge), not in StreamT.
            async for events in cast("faust.Stream[bytes]", stream).noack_take(BATCH, within=tick_s):
                agent.meter.took(len(events))
                taken = cast("Sequence[faust.EventT[bytes]]", events)  # typed as values; they are the events
                for token in agent.hold([(e.value, e) for e in taken], time.monotonic()):
                    await stream.ack(token)
                yield None
        finally:
            ticker.cancel()
            writer.cancel()  # what waits was not acknowledged: read again after a restart
            agent.writes = None

    return agent
