"""One ``aiops demo`` (the platform, the simulated shop, its control API and the notification receiver) for every
test of this folder, API keys of each role, the injection corpus and a watch on argv."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiops_common.broker import free_port
from aiops_common.process import stop_process
from aiops_common.testing.eventually import EventuallyTimeoutError, eventually, scaled
from google.rpc.status_pb2 import Status

ROLES = ("viewer", "operator", "approver", "admin")
WINDOW_S = 10
"""The stream's base window, the one the demo's detection judges."""

#: In every payload that could start a program: a process whose argv holds it, or a file named by it, means a
#: value reached a shell or a path.
TOKEN = f"pwn{uuid.uuid4().hex[:10]}"
CANARY = Path("/tmp") / TOKEN

#: What a hostile sender puts in a name, a label or a body: shell metacharacters, template syntax, path traversal,
#: control characters, markup that runs script (each sets ``window.__pwned`` or opens a dialog) and a very long value.
INJECTIONS: dict[str, str] = {
    "shell-substitution": f"$(touch {CANARY}-subst)",
    "backticks": f"`touch {CANARY}-tick`",
    "semicolon": f"x; touch {CANARY}-semi",
    "pipe-to-shell": f"a && echo touch {CANARY}-pipe | sh",
    "jinja": "{{7*7}}",
    "dollar-brace": "${7*7}",
    "jndi": "${jndi:ldap://127.0.0.1:1/" + TOKEN + "}",
    "traversal": f"../../../../../../tmp/{TOKEN}-traversal",
    "newline": f"line\nbreak {TOKEN}",
    "crlf": "cr\r\nSet-Cookie: pwned=1",
    "nul": "nul\x00byte",
    "script": "<script>window.__pwned=1</script>",
    "img-onerror": '<img src=x onerror="window.__pwned=1;alert(1)">',
    "attribute-break": '"\'><svg onload="window.__pwned=1">',
    "long": "L" * 5000,
}

#: Files a payload above would create if it reached a shell or a path.
CANARY_FILES = [Path(f"{CANARY}-{s}") for s in ("subst", "tick", "semi", "pipe", "traversal")]


#: What the demo is started with here: 10 minutes of history (the RCA's baseline is what came more than 5 minutes
#: before onset), detection judging from the third live window and a runbook's check passed by the first window back
#: inside its band, where the defaults (30 minutes, 4 windows, 30 s) add about a minute to the run; docs/demo.md says
#: what each changes.
DEMO_ARGS = ("--backfill", "10m", "--warm-windows", "2", "--verify-for", "0s")


@dataclass
class Platform:
    """``aiops demo`` on free loopback ports: its platform's ingestion and gateway, the shop's control API, its
    data folder, what it printed (the receiver's notifications among it) and an API key per role."""

    proc: subprocess.Popen[bytes]
    env: dict[str, str]
    data_dir: Path
    output: Path
    http_url: str
    gateway_url: str
    control_url: str
    keys: dict[str, str] = field(default_factory=dict)

    @classmethod
    def start(cls, folder: Path) -> Platform:
        ports = {name: free_port() for name in ("http", "grpc", "gateway", "control")}
        env = {
            **os.environ,
            "AIOPS_DATA_DIR": str(folder / "data"),
            "AIOPS_INGEST_HTTP_PORT": str(ports["http"]),
            "AIOPS_INGEST_GRPC_PORT": str(ports["grpc"]),
            "AIOPS_GATEWAY_PORT": str(ports["gateway"]),
            "AIOPS_DEMO_CONTROL_PORT": str(ports["control"]),
            "AIOPS_LOG_LEVEL": "WARNING",
            "AIOPS_GATEWAY_RATE_LIMIT": "100000/minute",
            "AIOPS_GATEWAY_ANONYMOUS_RATE_LIMIT": "100000/minute",
            "AIOPS_CORRELATE_TICK_S": "1",
        }
        env.pop("AIOPS_BROKER_URL", None)
        output = folder / "demo.out"
        with output.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "aiops_cli", "demo", *DEMO_ARGS], env=env, stdout=out, stderr=out
            )
        return cls(
            proc,
            env,
            folder / "data",
            output,
            f"http://127.0.0.1:{ports['http']}",
            f"http://127.0.0.1:{ports['gateway']}",
            f"http://127.0.0.1:{ports['control']}",
        )

    def printed(self) -> str:
        return self.output.read_text(errors="replace")

    async def until_ready(self) -> None:
        """The demo printed its banner (platform up, topology loaded, history posted, the shop live) and the
        gateway answers."""

        async def ready() -> bool:
            if self.proc.poll() is not None:  # not an AssertionError: the wait ends at once
                raise DemoExitedError(f"aiops demo exited with {self.proc.returncode}: {self.printed()[-3000:]}")
            if not re.search(r"^admin key: ", self.printed(), re.MULTILINE):
                return False
            try:
                async with httpx.AsyncClient(timeout=5.0) as client:
                    return (await client.get(self.gateway_url + "/ready")).status_code == 200
            except httpx.HTTPError:
                return False

        try:
            await eventually(ready, timeout=scaled(240.0), what="aiops demo's banner and the gateway's /ready")
        except EventuallyTimeoutError as exc:
            raise EventuallyTimeoutError(f"{exc}\n{self.printed()[-3000:]}") from None

    def stop(self) -> None:
        """SIGTERM, as Ctrl-C: the demo stops the shop and its platform (servers, agents, the embedded broker)."""
        stop_process(self.proc, 90)

    def client(self, role: str | None, base_url: str | None = None) -> httpx.Client:
        headers = {} if role is None else {"Authorization": f"Bearer {self.keys[role]}"}
        return httpx.Client(base_url=base_url or self.gateway_url, headers=headers, timeout=scaled(30.0))


class DemoExitedError(RuntimeError):
    """``aiops demo`` exited while a test waited on it; not an ``AssertionError``, so ``eventually()`` stops."""


def aiops(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aiops_cli", *args], env=env, capture_output=True, text=True, timeout=scaled(timeout)
    )


class ProcessWatch:
    """Reads every process's argv (``/proc/*/cmdline``) about every 50 ms; keeps those that hold ``TOKEN``."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        self.scans = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="argv-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        needle = TOKEN.encode()
        own = os.getpid()
        while not self._stop.is_set():
            for entry in os.scandir("/proc"):
                if not entry.name.isdigit() or int(entry.name) == own:
                    continue
                try:
                    with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                        argv = f.read()
                except OSError:
                    continue  # gone, or not ours to read
                if needle in argv:
                    shown = argv.replace(b"\0", b" ").decode(errors="replace")
                    self.hits.append(f"pid {entry.name}: {shown}")
            self.scans += 1
            self._stop.wait(0.05)


#: The order the folder's tests use the one demo in: the audit and the authorisation matrix while detection warms up
#: (neither touches the shop: the topology put back is the shop's, every subject named is made up), then the fault up
#: to its approval, then the injection corpus while the approved runbook runs and verifies, then the loop's end. The
#: corpus comes after the approval so that the fault's incident, its ranking and its proposal come from the shop's
#: signals alone (the corpus opens incidents, asks for a runbook and rewrites the topology file).
ORDER = (
    "test_audit_tamper",
    "test_platform_authorization",
    "test_whole_loop::test_the_fault_is_ranked_and_its_runbook_approved",
    "test_injection",
    "test_whole_loop",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    mine = [i for i, item in enumerate(items) if item.path.parent == here]
    if not mine:
        return

    def rank(item: pytest.Item) -> int:
        named = f"{item.path.stem}::{item.name}"
        for n, entry in enumerate(ORDER):
            if named == entry or item.path.stem == entry:
                return n
        return len(ORDER)

    ordered = sorted((items[i] for i in mine), key=rank)
    for i, item in zip(mine, ordered, strict=True):
        items[i] = item


@pytest.fixture(scope="package")
def process_watch() -> Iterator[ProcessWatch]:
    watch = ProcessWatch()
    watch.start()
    yield watch
    watch.stop()


@pytest.fixture(scope="package")
def platform(tmp_path_factory: pytest.TempPathFactory, process_watch: ProcessWatch) -> Iterator[Platform]:
    """The whole demo, shared by the folder's tests: starting it (and the shop turning warm) costs most of their
    time (``MODULE_ORDER`` says in which order they use it)."""
    running = Platform.start(tmp_path_factory.mktemp("bad-actors"))
    try:
        try:
            asyncio.run(running.until_ready())
        except (EventuallyTimeoutError, DemoExitedError) as exc:
            pytest.fail(str(exc))
        # One CLI start each, all at once (each costs about a second of imports).
        making = {
            role: subprocess.Popen(
                [sys.executable, "-m", "aiops_cli", "keys", "create", f"bad-actors-{role}", "--role", role],
                env=running.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for role in ROLES
        }
        for role, proc in making.items():
            out, err = proc.communicate(timeout=scaled(60))
            assert proc.returncode == 0, err
            running.keys[role] = out.strip()
        yield running
    finally:
        running.stop()
    # Everything stopped with it: no platform is left running from the demo's folder.
    assert not (running.data_dir / "state.json").exists(), running.printed()[-3000:]


@dataclass
class Approved:
    """The loop up to its approval: the fault injected, the runbook for it proposed and approved."""

    fault: dict[str, Any]
    incident: dict[str, Any]
    """The incident's detail (``GET /api/v1/incidents/{id}``) when the runbook waited for approval."""
    causes: list[dict[str, Any]]
    """Its root-cause ranking then."""
    execution: dict[str, Any]
    """The execution as it waited for approval."""
    decision: httpx.Response


def _viewer_get(platform: Platform, path: str, **params: Any) -> Any:
    with platform.client("viewer") as viewer:
        answer = viewer.get(path, params=params)
    assert answer.status_code == 200, f"GET {path}: {answer.status_code} {answer.text[:300]}"
    return answer.json()


def control_status(platform: Platform) -> dict[str, Any]:
    with httpx.Client(base_url=platform.control_url, timeout=scaled(10.0)) as control:
        status: dict[str, Any] = control.get("/status").json()
    return status


def wait(check: Any, timeout_s: float, what: str, interval: float = 1.0) -> Any:
    return asyncio.run(eventually(check, timeout=scaled(timeout_s), what=what, interval=interval))


@pytest.fixture(scope="package")
def approved(platform: Platform) -> Approved:
    """A payment latency fault through the shop's control API once detection is warm; the runbook proposed for it,
    approved through the gateway by a person of the approver role (not its requester: the action service asked)."""

    def warm() -> bool:
        assert control_status(platform)["warm"], "the shop's series are not warm yet"
        return True

    wait(warm, 240, "detection warm on the shop's series (the control API's status)", interval=2.0)

    # Onset just after a 10 s window starts, as the scripted `aiops demo run` does: a fault late in a window gives
    # its first window a second or two of it, and the RCA's first ranking (the one the runbook is proposed on) less
    # to go by.
    def early_in_a_window() -> bool:
        assert 0.3 <= time.time() % WINDOW_S <= 1.5, "not at the start of a window"
        return True

    wait(early_in_a_window, 30, "the start of a 10 s window", interval=0.1)
    with httpx.Client(base_url=platform.control_url, timeout=scaled(10.0)) as control:
        made = control.post("/faults", json={"service": "payment", "kind": "latency", "for_s": 300})
    assert made.status_code == 201, made.text

    def pending() -> dict[str, Any]:
        waiting = _viewer_get(platform, "/api/v1/approvals", limit=200)["executions"]
        ours = [e for e in waiting if e.get("cause_service") == "payment"]
        assert ours, f"no execution for payment waits for approval: {[e.get('cause_service') for e in waiting]}"
        return dict(ours[0])

    execution = wait(pending, 180, "a runbook for payment waiting for approval")
    incident_id = execution["incident_id"]
    detail = _viewer_get(platform, f"/api/v1/incidents/{incident_id}")
    causes = _viewer_get(platform, f"/api/v1/incidents/{incident_id}/rca")["causes"]
    with platform.client("approver") as approver:
        decision = approver.post(
            f"/api/v1/approvals/{execution['id']}/approve", json={"comment": "scale payment out (bad-actors loop)"}
        )
    return Approved(made.json(), detail, causes, execution, decision)


def assert_refused_clearly(response: httpx.Response, what: str) -> None:
    """A refusal is a 4xx whose body says what was wrong (never a 5xx, never a bare status)."""
    assert 400 <= response.status_code < 500, f"{what}: {response.status_code} {response.text[:300]}"
    if response.headers.get("content-type", "").startswith("application/x-protobuf"):
        # OTLP/HTTP answers a protobuf request's refusal with a google.rpc.Status, as the OTLP specification asks.
        status = Status.FromString(response.content)
        assert status.message.strip(), f"{what}: an OTLP refusal without a message"
        return
    body = response.json()
    assert isinstance(body, dict) and str(body.get("error", "")).strip(), f"{what}: no message: {response.text[:300]}"


def nothing_reached_a_shell(watch: ProcessWatch) -> None:
    assert watch.scans > 0, "the argv watch never ran"
    assert watch.hits == [], f"processes ran with an injected value in their argv: {watch.hits}"
    made = [str(p) for p in CANARY_FILES if p.exists()]
    assert made == [], f"files named by injected values were created: {made}"
