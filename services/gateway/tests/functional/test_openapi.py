"""Every operation of the gateway's OpenAPI document, fuzzed by schemathesis against the real server with an admin
key: no server error, and every answer as documented (status code, content type, body schema)."""

from __future__ import annotations

import asyncio
import functools
import itertools
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from aiops_common.broker.addresses import free_port
from aiops_common.schemas import (
    CauseKind,
    Evidence,
    EvidenceKind,
    IncidentMember,
    IncidentRecord,
    IncidentSeverity,
    IncidentStatus,
    JoinReason,
    LinkedChange,
    MemberKind,
    RankedCause,
    RcaResult,
    RcaStatus,
    rca_result_id,
)
from aiops_common.testing.records import service_anomaly
from aiops_common.topology import Dependency, Service
from aiops_gateway.app import API_PREFIX
from aiops_gateway.auth import Role
from aiops_gateway.routes import ingest
from aiops_gateway.testing import RunningGateway, start_gateway
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, CheckContext, CheckFunction, GenerationMode, Response, SerializationContext
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.functional

#: Writes the gateway forwards to the ingestion service, which this test does not run: their documented 503.
FORWARDED = frozenset(API_PREFIX + path for path in ingest.FORWARDED)


@schemathesis.serializer("application/x-protobuf")
def _protobuf(ctx: SerializationContext, value: Any) -> bytes:
    """Remote write bodies as the bytes generated for them (a ``format: binary`` string)."""
    if isinstance(value, bytes):
        return value
    raw = getattr(value, "data", value)  # schemathesis' Binary wrapper
    return raw if isinstance(raw, bytes) else str(raw).encode()


def no_server_error(ctx: CheckContext, response: Response, case: schemathesis.Case[Any]) -> bool | None:
    """schemathesis' ``not_a_server_error``, but for the answer the platform specifies: 503 from a forwarding route
    whose upstream is down (this test starts no ingestion service)."""
    if response.status_code == 503 and case.operation.path in FORWARDED:
        return None
    return not_a_server_error(ctx, response, case)


#: What uvicorn answers, as plain text, to a request its HTTP parser refuses before any route sees it (a request
#: line of ~100 KB of fuzzed query string, say): the HTTP server's refusal, not an answer of the API.
UNPARSED = b"Invalid HTTP request received."


def _from_the_api(check: CheckFunction) -> CheckFunction:
    def checked(ctx: CheckContext, response: Response, case: schemathesis.Case[Any]) -> bool | None:
        if response.status_code == 400 and response.content == UNPARSED:
            return None
        return check(ctx, response, case)

    checked.__name__ = getattr(check, "__name__", "check")
    return checked


CHECKS: list[CheckFunction] = [
    no_server_error,
    status_code_conformance,
    _from_the_api(content_type_conformance),
    _from_the_api(response_schema_conformance),
]

#: Cases per operation and generation mode: ~25 operations x (25 valid + 10 invalid) stays near a minute on 2 cores.
VALID_EXAMPLES = 25
INVALID_EXAMPLES = 10

SERVICES = ("checkout", "payment", "cart", "catalog", "postgres")
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)


@dataclass
class Seeded:
    """Ids of what the stores hold, by the first path segment under ``/api/v1`` that names them."""

    by_segment: dict[str, list[str]] = field(default_factory=dict)

    def ids_for(self, path: str) -> list[str]:
        segment = path.removeprefix(API_PREFIX + "/").split("/", 1)[0]
        return self.by_segment.get(segment, [])


def _incident(n: int) -> IncidentRecord:
    started = T0 + timedelta(minutes=37 * n)
    services = [SERVICES[n % len(SERVICES)], SERVICES[(n + 1) % len(SERVICES)]]
    members = [
        IncidentMember(
            fingerprint=f"fp-{n}-{i}",
            kind=MemberKind.ALERT if i == 0 else MemberKind.ANOMALY,
            name="HighLatency" if i == 0 else "red.latency_s",
            service=service,
            severity=IncidentSeverity.MAJOR,
            labels={"service": service},
            started_at=started + timedelta(seconds=20 * i),
            lead=i == 0,
            reason=JoinReason(rule="seed")
            if i == 0
            else JoinReason(rule="topology", related_to=f"fp-{n}-0", gap_s=20.0, path=services, text="calls"),
            joined_at=started + timedelta(seconds=20 * i),
        )
        for i, service in enumerate(services)
    ]
    status = list(IncidentStatus)[n % len(IncidentStatus)]
    return IncidentRecord(
        id=f"inc-fuzz-{n}",
        revision=1,
        title=f"{services[0]} latency",
        summary=f"{services[0]} slow, {services[1]} follows",
        status=status,
        severity=IncidentSeverity.MAJOR,
        services=services,
        started_at=started,
        updated_at=started + timedelta(minutes=5),
        resolved_at=started + timedelta(minutes=30) if status is IncidentStatus.RESOLVED else None,
        members=members,
        changes=[
            LinkedChange(
                id=f"chg-{n}",
                service=services[0],
                version="v1.2.3",
                at=started - timedelta(minutes=4),
                before_onset_s=240,
            )
        ],
    )


def _rca_summary(incident: IncidentRecord) -> dict[str, Any]:
    # What the RCA service writes onto an analysed incident (aiops_rca.agents.root_cause.incident_summary).
    return {
        "id": f"rca-{incident.id}",
        "revision": incident.revision,
        "status": "ok",
        "analyzed_at": (incident.started_at + timedelta(minutes=2)).isoformat(),
        "summary": f"{incident.services[0]} latency",
        "missing": [],
        "causes": [
            {"service": incident.services[0], "probability": 0.8, "kind": "latency", "rule": ""},
            {"service": incident.services[1], "probability": 0.15, "kind": "errors", "rule": ""},
        ],
    }


def _rca_result(incident: IncidentRecord) -> RcaResult:
    at = incident.started_at + timedelta(minutes=2)
    cause, other = incident.services[0], incident.services[1]
    return RcaResult(
        id=rca_result_id(incident.id, incident.revision),
        incident_id=incident.id,
        incident_revision=incident.revision,
        at=at,
        analyzed_at=at,
        status=RcaStatus.OK,
        onset=incident.started_at,
        services=incident.services,
        causes=[
            RankedCause(
                service=cause,
                probability=0.8,
                kind=CauseKind.LATENCY,
                evidence=[
                    Evidence(kind=EvidenceKind.SERIES, text=f"{cause} latency rose", series="red.latency_s"),
                    Evidence(kind=EvidenceKind.CHANGE, text="deployed 4 min before", change_id=f"chg-{incident.id}"),
                ],
            ),
            RankedCause(service=other, probability=0.2, kind=CauseKind.ERRORS),
        ],
        summary=f"{cause} latency",
        elapsed_ms=120.0,
    )


async def _seed(running: RunningGateway) -> Seeded:
    gw = running.gateway
    seeded = Seeded()
    incidents = [_incident(n) for n in range(6)]
    for n, incident in enumerate(incidents):
        body: dict[str, Any] = incident.document()
        if n % 2 == 0:
            body["rca"] = _rca_summary(incident)
        await gw.documents.upsert("incidents", incident.id, body)
    for incident in incidents[:3]:
        result = _rca_result(incident)
        await gw.documents.upsert("rca_results", result.id, result.document())
    anomalies = [service_anomaly("red.latency_s", s, T0 + timedelta(minutes=10 * i)) for i, s in enumerate(SERVICES)]
    for anomaly in anomalies:
        await gw.documents.upsert(
            "anomalies", anomaly.id, {**anomaly.model_dump(mode="json"), "services": [anomaly.service]}
        )
    for name in ("incidents", "rca_results", "anomalies"):
        await gw.documents.refresh(name)
    await gw.topology.upsert_services(Service(s, {"tier": "backend"}) for s in SERVICES)
    await gw.topology.upsert_dependencies(
        Dependency(a, b, frozenset({"traces"}), T0, T0 + timedelta(hours=1)) for a, b in itertools.pairwise(SERVICES)
    )
    seeded.by_segment = {
        "incidents": [i.id for i in incidents],
        "anomalies": [a.id for a in anomalies],
        "topology": list(SERVICES),
        "services": list(SERVICES),
    }
    return seeded


@pytest.fixture
async def fuzzed(tmp_path: Path, broker_url: str, topic_prefix: str) -> AsyncIterator[tuple[RunningGateway, Seeded]]:
    """The gateway with seeded stores; rate limits out of the way (the fuzzer is one key sending fast), and
    forwarded writes sent to a port where nothing listens (never to a service outside the test)."""
    servers, running = await start_gateway(
        tmp_path,
        broker_url,
        topic_prefix,
        gateway_ingest_url=f"http://127.0.0.1:{free_port()}",
        gateway_rate_limit="1000000/minute",
        gateway_anonymous_rate_limit="1000000/minute",
    )
    try:
        yield running, await _seed(running)
    finally:
        await servers.stop()


def _streams(raw: dict[str, Any], path: str, method: str) -> bool:
    """Whether the operation answers with an event stream (read its first frame, not to its never-coming end)."""
    responses = raw["paths"][path][method.lower()].get("responses", {})
    return any("text/event-stream" in (r.get("content") or {}) for r in responses.values())


def _first_frame(case: schemathesis.Case[Any], url: str, headers: dict[str, str]) -> httpx.Response:
    """The operation's answer up to its first event (a live stream has no end to read to)."""
    kwargs = case.as_transport_kwargs(base_url=url, headers=headers)
    started = time.monotonic()
    with (
        httpx.Client(timeout=30.0) as client,
        client.stream(kwargs["method"], kwargs["url"], params=kwargs.get("params"), headers=kwargs["headers"]) as r,
    ):
        content = b""
        for chunk in r.iter_bytes():
            content += chunk
            if b"\n\n" in content or r.status_code != 200:
                break
        response = httpx.Response(r.status_code, headers=r.headers, content=content, request=r.request)
        response.elapsed = timedelta(seconds=time.monotonic() - started)
        return response


def _fuzz(url: str, key: str, seeded: Seeded) -> tuple[list[str], dict[str, dict[int, int]]]:
    """Run every operation's cases (in a thread: the server under test runs on the test's event loop)."""
    raw = httpx.get(f"{url}{API_PREFIX}/openapi.json", timeout=30.0).json()
    schema = schemathesis.openapi.from_url(f"{url}{API_PREFIX}/openapi.json")
    headers = {"Authorization": f"Bearer {key}"}
    failures: list[str] = []
    calls: dict[str, dict[int, int]] = {}
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            failures.append(f"the document describes an operation schemathesis cannot read: {result.err()}")
            continue
        operation = result.ok()
        streams = _streams(raw, operation.path, operation.method)
        for mode, examples in ((GenerationMode.POSITIVE, VALID_EXAMPLES), (GenerationMode.NEGATIVE, INVALID_EXAMPLES)):
            strategy = operation.as_strategy(generation_mode=mode)
            names = [p.name for p in operation.path_parameters]
            known = seeded.ids_for(operation.path)
            if names and known and mode is GenerationMode.POSITIVE:
                # Half the valid cases name stored things, so routes by id answer with real bodies too.
                strategy = st.one_of(
                    strategy, st.sampled_from(known).flatmap(functools.partial(_naming, operation, names))
                )
            label = f"{operation.label} ({mode.value})"
            found: dict[str, str] = {}
            test = _one_operation(
                strategy,
                examples,
                url,
                headers,
                streams,
                functools.partial(_count, calls, label),
                found,
            )
            try:
                test()
            except Unsatisfiable:
                if mode is not GenerationMode.NEGATIVE:
                    raise
                # Nothing to make invalid: the operation takes no parameters and no body.
            except (Exception, BaseExceptionGroup) as exc:  # every operation runs; each one's error is reported
                found["error"] = _describe(exc)
            failures.extend(f"{label}: {kind}\n{text}" for kind, text in found.items())
    return failures, calls


def _naming(
    operation: APIOperation[Any, Any, Any, Any], names: list[str], known_id: str
) -> st.SearchStrategy[schemathesis.Case[Any]]:
    """The operation's valid cases with every path parameter set to ``known_id``."""
    return operation.as_strategy(path_parameters=dict.fromkeys(names, known_id))


def _describe(exc: BaseException) -> str:
    """An error and, for a group (a check's failures, hypothesis' flaky report), each error in it."""
    if isinstance(exc, BaseExceptionGroup):
        inner = "\n".join(_describe(e) for e in exc.exceptions)
        return f"{exc.message}\n{inner}"
    return str(exc)


def _count(calls: dict[str, dict[int, int]], label: str, status: int) -> None:
    by_status = calls.setdefault(label, {})
    by_status[status] = by_status.get(status, 0) + 1


def _one_operation(
    strategy: st.SearchStrategy[schemathesis.Case[Any]],
    examples: int,
    url: str,
    headers: dict[str, str],
    streams: bool,
    counted: Callable[[int], None],
    found: dict[str, str],
) -> Callable[[], None]:
    """Hypothesis over one operation's cases. A failing case is noted in ``found`` (by kind, with its curl command)
    rather than raised: a fuzzed server keeps state (an incident acknowledged stays so), so hypothesis' replay of a
    failing case may answer differently and would report only that it was flaky."""

    @settings(
        max_examples=examples,
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(case=strategy)
    def test(case: schemathesis.Case[Any]) -> None:
        if streams:
            response: Any = _first_frame(case, url, headers)
        else:
            response = case.call(base_url=url, headers=headers, timeout=30)
        counted(response.status_code)
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except FailureGroup as group:
            for failure in group.exceptions:
                found.setdefault(f"{failure.code} {failure.title}", str(group))

    return test


# The server under test runs in this process, on the event loop's thread, and draws from the `random` module while
# hypothesis generates cases on the fuzzing thread: hypothesis takes that for a strategy using `random`.
@pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")
async def test_every_operation_answers_as_its_openapi_document_says(fuzzed: tuple[RunningGateway, Seeded]) -> None:
    running, seeded = fuzzed
    key = await running.key(Role.ADMIN)
    started = time.monotonic()
    failures, calls = await asyncio.to_thread(_fuzz, running.url, key, seeded)
    elapsed = time.monotonic() - started
    operations = {label.rsplit(" (", 1)[0] for label in calls}
    # The document is the app's: the probes, the identity route and every route added later are all in it.
    assert {"GET /health", "GET /api/v1/me"} <= operations, sorted(operations)
    assert not failures, f"{len(failures)} kind(s) of answer otherwise than documented:\n\n" + "\n\n".join(failures)
    # Reads by id were fuzzed against stored things too, not only against ids that do not exist.
    by_id = [
        label
        for label in calls
        if label.startswith("GET ") and "{" in label and seeded.ids_for(label.split()[1]) and "(positive)" in label
    ]
    unfound = [label for label in by_id if 200 not in calls[label]]
    assert not unfound, f"never answered 200 for a stored id: {unfound} ({calls})"
    total = sum(sum(c.values()) for c in calls.values())
    print(f"fuzzed {len(operations)} operations with {total} calls in {elapsed:.0f} s")
