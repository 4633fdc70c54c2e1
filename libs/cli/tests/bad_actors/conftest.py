"""One ``aiops up`` for every bad-actor test, API keys of each role, the injection corpus and a watch on argv."""

from __future__ import annotations

import asyncio
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
from aiops_cli.testing import PlatformProcess, WorkerExitedError
from aiops_common.testing.eventually import EventuallyTimeoutError, scaled
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

    process: PlatformProcess
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return self.process.env

    @property
    def data_dir(self) -> Path:
        return self.process.data_dir

    @property
    def http_url(self) -> str:
        return self.process.http_url

    @property
    def gateway_url(self) -> str:
        return self.process.gateway_url

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
    process = PlatformProcess.start(
        tmp / "data",
        tmp / "up.log",
        "--no-host-metrics",
        AIOPS_GATEWAY_RATE_LIMIT="100000/minute",
        AIOPS_GATEWAY_ANONYMOUS_RATE_LIMIT="100000/minute",
        AIOPS_CORRELATE_TICK_S="1",
    )
    running = Platform(process)
    try:
        try:
            asyncio.run(process.until_ready(gateway=True))
        except (EventuallyTimeoutError, WorkerExitedError) as exc:
            pytest.fail(str(exc))
        for role in ROLES:
            made = aiops("keys", "create", f"bad-actors-{role}", "--role", role, env=process.env)
            assert made.returncode == 0, made.stderr
            running.keys[role] = made.stdout.strip()
        yield running
    finally:
        process.stop()


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
