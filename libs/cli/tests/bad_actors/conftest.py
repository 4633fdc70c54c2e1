"""One ``aiops up`` for every bad-actor test, API keys of each role, the injection corpus and a watch on argv."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from aiops_common.broker import free_port
from aiops_common.testing.eventually import EventuallyTimeoutError, eventually, scaled
from google.rpc.status_pb2 import Status

ROLES = ("viewer", "operator", "approver", "admin")

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


@dataclass
class Platform:
    """``aiops up`` on free loopback ports, its data folder and an API key per role."""

    proc: subprocess.Popen[bytes]
    env: dict[str, str]
    data_dir: Path
    http_url: str
    gateway_url: str
    log: Path
    keys: dict[str, str] = field(default_factory=dict)

    def client(self, role: str | None, base_url: str | None = None) -> httpx.Client:
        headers = {} if role is None else {"Authorization": f"Bearer {self.keys[role]}"}
        return httpx.Client(base_url=base_url or self.gateway_url, headers=headers, timeout=scaled(30.0))


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


@pytest.fixture(scope="package")
def process_watch() -> Iterator[ProcessWatch]:
    watch = ProcessWatch()
    watch.start()
    yield watch
    watch.stop()


@pytest.fixture(scope="package")
def platform(tmp_path_factory: pytest.TempPathFactory, process_watch: ProcessWatch) -> Iterator[Platform]:
    """The whole platform, shared by the folder's tests: starting it costs most of their time."""
    tmp = tmp_path_factory.mktemp("bad-actors")
    http_port, gateway_port = free_port(), free_port()
    data_dir = tmp / "data"
    env = {
        **os.environ,
        "AIOPS_DATA_DIR": str(data_dir),
        "AIOPS_INGEST_HTTP_PORT": str(http_port),
        "AIOPS_INGEST_GRPC_PORT": str(free_port()),
        "AIOPS_GATEWAY_PORT": str(gateway_port),
        "AIOPS_GATEWAY_RATE_LIMIT": "100000/minute",
        "AIOPS_GATEWAY_ANONYMOUS_RATE_LIMIT": "100000/minute",
        "AIOPS_CORRELATE_TICK_S": "1",
        "AIOPS_LOG_LEVEL": "WARNING",
    }
    env.pop("AIOPS_BROKER_URL", None)
    log = tmp / "up.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "aiops_cli", "up", "--no-host-metrics"], env=env, stdout=out, stderr=out
        )
    running = Platform(proc, env, data_dir, f"http://127.0.0.1:{http_port}", f"http://127.0.0.1:{gateway_port}", log)

    async def answers_200(url: str) -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"aiops up exited with {proc.returncode}: " + log.read_text()[-3000:])
        try:
            async with httpx.AsyncClient(timeout=5.0) as client:
                return (await client.get(url)).status_code == 200
        except httpx.HTTPError:
            return False  # not listening yet

    async def ready() -> bool:
        if not await answers_200(running.http_url + "/ready"):
            return False
        state = json.loads((data_dir / "state.json").read_text())
        return await answers_200(state["probe_url"] + "/ready") and await answers_200(running.gateway_url + "/ready")

    try:
        try:
            asyncio.run(eventually(ready, timeout=120, what="aiops up's ingestion, worker and gateway /ready"))
        except EventuallyTimeoutError as exc:
            pytest.fail(f"{exc}\n" + log.read_text()[-3000:])
        for role in ROLES:
            made = aiops("keys", "create", f"bad-actors-{role}", "--role", role, env=env)
            assert made.returncode == 0, made.stderr
            running.keys[role] = made.stdout.strip()
        yield running
    finally:
        if proc.poll() is None:
            proc.terminate()  # SIGTERM stops agents, servers and the embedded broker
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


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
