"""One demo session: ``aiops up`` with the demo's settings, topology, backfill, the live shop, its control API,
the local receiver, and the loop followed on the platform's topics with its timings."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import yaml
from aiops_common.run_state import RunState
from aiops_common.service import Endpoint, discover_services
from aiops_common.topics import Topics

from aiops_cli.demo.control import ControlApi
from aiops_cli.demo.faults import CALLS, ROLLOUT_S, SERVICES, Fault, FaultKind, ServiceState, ShopState
from aiops_cli.demo.receiver import Receiver
from aiops_cli.demo.timings import LoopTimings, render_table, write_results
from aiops_cli.settings import PlatformSettings

__all__ = ["TOPOLOGY", "DemoError", "DemoOptions", "DemoSession", "platform_env"]

_RUNBOOK_URL = "http://127.0.0.1:4390"
"""The control API address written in the packaged runbooks (their URLs are literals)."""

TOPOLOGY: dict[str, Any] = {
    "services": [
        {"name": "frontend", "team": "web", "tier": "edge"},
        {"name": "checkout", "team": "orders", "tier": "core"},
        {"name": "payment", "team": "payments", "tier": "core"},
        {"name": "database", "team": "data", "tier": "storage"},
        {"name": "inventory", "team": "orders", "tier": "core"},
    ],
    "dependencies": [{"from": caller, "to": callee} for caller, callees in CALLS.items() for callee in callees],
}

DETECTION_ENV = {
    # 10 s windows (the stream's base window) instead of the 60 s roll-up: an anomaly a window after onset.
    "AIOPS_DETECT_WINDOWS_S": "[10]",
    # The shop serves about 40 requests per 10 s window.
    "AIOPS_DETECT_ERROR_MIN_REQUESTS": "20",
    # Only clear departures alert: a window just past the recent extremes (score about 0.5) is the shop's noise,
    # and a noisy callee alerting beside the fault would look like the cause to the RCA.
    "AIOPS_DETECT_ALERT_SCORE": "0.8",
    # The RCA analyses an incident once it has been quiet this long, and its first ranking comes at least this long
    # after it opened: it then sees the fault's second window too. From the first window alone (a few seconds of
    # the fault) it often ranked the faulted service's callee or caller first. The incident gains members every
    # window while the fault spreads, so it is rarely quiet: the longest wait bounds the first ranking.
    "AIOPS_RCA_DEBOUNCE_S": "12",
    "AIOPS_RCA_DEBOUNCE_MAX_S": "20",
    "AIOPS_HOST_METRICS": "false",
}

WINDOW_S = 10
WARM_AFTER_LIVE_WINDOWS = 4

_DONE = {"succeeded", "rolled_back", "rollback_failed", "failed", "interrupted", "rejected", "expired"}


class DemoError(RuntimeError):
    """The demo cannot start or go on (a port taken, the platform exited, a step refused)."""


@dataclass
class DemoOptions:
    fault: tuple[str, str] | None = None
    """Scripted: inject this (service, kind) once warm, then wait for the outcome."""
    fault_for_s: float = 300.0
    approve: bool = False
    timeout_s: float = 300.0
    warmup_s: float = 60.0
    """Scripted: seconds of live traffic after the backfill before the fault (detection turns warm after about
    40 s of it); the fault waits for detection to be warm in any case."""
    backfill_s: float | None = None
    """Seconds of history posted before the shop goes live; None: ``AIOPS_DEMO_BACKFILL_S``."""
    verify_for_s: float | None = None
    """How long a runbook's check must hold after it acted (its ``verify.for_s``); None: as the runbooks say (30 s)."""
    warm_windows: int = WARM_AFTER_LIVE_WINDOWS
    """Live windows after the history that detection learns from before it judges any."""
    results: Path | None = Path("benchmarks/results/demo.json")
    out: Callable[[str], object] = print


def min_history(backfill_s: float, warm_windows: int = WARM_AFTER_LIVE_WINDOWS) -> int:
    """Windows a series needs before detection judges it: the backfill's, then ``warm_windows`` live ones.

    History and the switch to live data teach the models, only live windows after it are judged (judged history,
    or the seam between history and live data, would open incidents that the fault's anomalies then join)."""
    return max(30, int(backfill_s / WINDOW_S) + warm_windows)


RCA_PRE_ONSET_S = 300
"""The RCA's baseline ends this long before an incident's onset (set for the demo's platform, so the roll-ups chosen
below and the RCA agree on it)."""
BASELINE_WINDOWS = 5
"""Windows of a roll-up the RCA's baseline needs, before that pre-onset period, to say what normal is."""
STREAM_ROLLUPS = (60, 300)


def rollups(backfill_s: float) -> list[int]:
    """The stream's roll-ups whose baseline the history fills: with a short backfill the RCA would compare a
    5-minute roll-up's one or two history windows (a near-constant baseline) with the fault and rank by noise."""
    return [r for r in STREAM_ROLLUPS if (backfill_s - RCA_PRE_ONSET_S) / r >= BASELINE_WINDOWS]


def platform_env(
    settings: PlatformSettings,
    data_dir: Path,
    runbooks: Path,
    notify: Path,
    control_url: str,
    ui_url: str,
    backfill_s: float | None = None,
    warm_windows: int = WARM_AFTER_LIVE_WINDOWS,
) -> dict[str, str]:
    """The environment of the demo's ``aiops up``: this one's, plus the demo's runbooks, channels and detection."""
    env = {**os.environ, **DETECTION_ENV}
    history = settings.demo_backfill_s if backfill_s is None else backfill_s
    env["AIOPS_DETECT_MIN_HISTORY"] = str(min_history(history, warm_windows))
    env["AIOPS_STREAM_ROLLUPS"] = json.dumps(rollups(history))
    env["AIOPS_RCA_PRE_ONSET_S"] = str(RCA_PRE_ONSET_S)
    env.update(
        AIOPS_DATA_DIR=str(data_dir),
        AIOPS_ACTION_RUNBOOKS_DIR=str(runbooks),
        AIOPS_ACTION_NOTIFY_FILE=str(notify),
        AIOPS_ACTION_UI_URL=ui_url,
        AIOPS_GATEWAY_DEMO_URL=control_url,
    )
    return env


def demo_data_dir(settings: PlatformSettings) -> Path:
    """AIOPS_DATA_DIR when set, else ``.aiops-demo``: the demo never mixes its state with ``aiops up``'s."""
    return Path(settings.data_dir) if "data_dir" in settings.model_fields_set else Path(".aiops-demo")


_MARKER = ".aiops-demo"


def fresh_data_dir(folder: Path) -> Path:
    """Start every demo from empty state (a second run's history would land behind the first's windows and be
    dropped as late): a folder an earlier demo made (it holds the marker) is emptied; any other non-empty folder is
    refused rather than touched."""
    if folder.exists() and any(folder.iterdir()):
        if not (folder / _MARKER).exists():
            raise DemoError(f"{folder} holds data that is not a demo's; point AIOPS_DATA_DIR at a new folder")
        if RunState.read(folder) is not None:
            raise DemoError(f"a platform is running from {folder} (another demo?); stop it first")
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / _MARKER).write_text("state of `aiops demo`; emptied when the next demo starts\n")
    return folder


def write_runbooks(folder: Path, control_url: str, verify_for_s: float | None = None) -> Path:
    """The packaged runbooks, their control URL moved to ``control_url`` when the API serves elsewhere, and their
    check's ``for_s`` set to ``verify_for_s`` when given."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.yaml"):
        old.unlink()
    for item in resources.files("aiops_cli.demo").joinpath("runbooks").iterdir():
        if item.name.endswith(".yaml"):
            text = item.read_text().replace(_RUNBOOK_URL, control_url.rstrip("/"))
            if verify_for_s is not None:
                runbook = yaml.safe_load(text)
                runbook["verify"]["for_s"] = verify_for_s
                text = yaml.safe_dump(runbook, sort_keys=False)
            (folder / item.name).write_text(text)
    return folder


def write_notify_file(path: Path, receiver_url: str, secret: str) -> Path:
    config = {
        "channels": [
            {"name": "demo-slack", "kind": "slack", "url": f"{receiver_url}/slack"},
            {"name": "demo-webhook", "kind": "webhook", "url": f"{receiver_url}/webhook", "secret": secret},
        ],
        "routes": [{"match": {"min_severity": "info"}, "channels": ["demo-slack", "demo-webhook"]}],
        "group_interval_s": 30,
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)  # it holds the webhook secret
    return path


@dataclass
class DemoSession:
    settings: PlatformSettings
    options: DemoOptions = field(default_factory=DemoOptions)
    state: ShopState = field(default_factory=ShopState)
    runs: list[LoopTimings] = field(default_factory=list)
    key: str = ""
    ingest_url: str = ""
    gateway_url: str = ""
    warm: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once every shop service's series has the windows detection needs before it judges one."""
    _proc: subprocess.Popen[bytes] | None = None
    _approved: set[str] = field(default_factory=set)
    _written: set[str] = field(default_factory=set)

    def say(self, line: str) -> None:
        self.options.out(line)

    @property
    def backfill_s(self) -> float:
        return self.settings.demo_backfill_s if self.options.backfill_s is None else self.options.backfill_s

    # ---------------------------------------------------------------- start

    async def run(self) -> int:
        """Run until Ctrl-C or SIGTERM (interactive) or the scripted fault's outcome; the exit code."""
        main = asyncio.current_task()
        if main is not None:
            # SIGTERM stops the demo as Ctrl-C does: the platform and the shop are stopped, never orphaned.
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main.cancel)
        data_dir = fresh_data_dir(demo_data_dir(self.settings).resolve())
        results = self.options.results
        if results is None or not results.parent.is_dir():
            # Interactive, or outside the repository (no benchmarks/results here): the timings stay with the
            # demo's state.
            self.options.results = data_dir / "demo.json"
        secret = secrets.token_urlsafe(24)
        receiver = Receiver(secret, show=self._notified)
        control = ControlApi(
            self.state, on_fault=self._on_fault, on_change=self._on_change, warm=lambda: self.warm.is_set()
        )
        tasks: list[asyncio.Task[None]] = []
        shop: Any = None
        try:
            receiver_url = await receiver.start()
            try:
                control_url = await control.start(self.settings.demo_control_host, self.settings.demo_control_port)
            except OSError as exc:
                raise DemoError(
                    f"cannot serve the shop's control API on {self.settings.demo_control_host}:"
                    f"{self.settings.demo_control_port} ({exc.strerror}); is another demo running? "
                    "(AIOPS_DEMO_CONTROL_PORT)"
                ) from None
            gateway = discover_services().get("gateway")
            ui_url = gateway.load_settings().advertised_urls().get(Endpoint.GATEWAY_HTTP, "") if gateway else ""
            env = platform_env(
                self.settings,
                data_dir,
                write_runbooks(data_dir / "demo-runbooks", control_url, self.options.verify_for_s),
                write_notify_file(data_dir / "demo-notify.yaml", receiver_url, secret),
                control_url,
                ui_url,
                self.backfill_s,
                self.options.warm_windows,
            )
            self.say(f"starting the platform (aiops up, state in {data_dir}, log {data_dir / 'demo-up.log'})")
            await self._start_platform(env, data_dir)
            topology = data_dir / "demo-topology.json"
            topology.write_text(json.dumps(TOPOLOGY, indent=2))
            # Two CLI starts at once: each spends most of its second on imports.
            _, made = await asyncio.gather(
                self._cli(env, "topology", "load", str(topology)),
                self._cli(env, "keys", "create", f"demo-admin-{int(time.time())}", "--role", "admin"),
            )
            self.say("shop topology loaded: frontend -> checkout -> payment -> database, checkout -> inventory")
            self.key = made.strip().splitlines()[-1]
            history_start = await self._backfill()
            from aiops_cli.demo.shop import Shop

            shop = Shop(self.ingest_url, self.state, seed=self.settings.demo_seed + 1)
            tasks.append(asyncio.create_task(self._live(shop)))
            tasks.append(asyncio.create_task(self._follow(data_dir)))
            tasks.append(asyncio.create_task(self._until_warm(history_start)))
            self._banner(control_url)
            if self.options.fault is None:
                await asyncio.Event().wait()  # until Ctrl-C
                return 0
            return await self._scripted(*self.options.fault)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if shop is not None:
                await asyncio.to_thread(shop.shutdown)
            await control.stop()
            await receiver.stop()
            await asyncio.to_thread(self._stop_platform)

    async def _start_platform(self, env: dict[str, str], data_dir: Path) -> None:
        log = data_dir / "demo-up.log"
        self._proc = _spawn_up(env, log)
        deadline = time.monotonic() + 240
        async with httpx.AsyncClient(timeout=5) as client:
            while True:
                if self._proc.poll() is not None:
                    tail = log.read_text(errors="replace")[-3000:]
                    raise DemoError(f"aiops up exited with {self._proc.returncode}:\n{tail}")
                run_state = RunState.read(data_dir)
                if run_state is not None and run_state.http_url and run_state.probe_url:
                    ready = True
                    for url in (run_state.http_url, run_state.probe_url):
                        try:
                            ready = ready and (await client.get(url + "/ready")).status_code == 200
                        except httpx.HTTPError:
                            ready = False
                    if ready:
                        self.ingest_url = run_state.http_url
                        self.gateway_url = run_state.gateway_url or ""
                        return
                if time.monotonic() > deadline:
                    raise DemoError(f"the platform was not ready within 240 s (see {log})")
                await asyncio.sleep(0.5)

    def _stop_platform(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.send_signal(signal.SIGTERM)  # stops servers, agents and the embedded broker cleanly
        try:
            self._proc.wait(60)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()

    async def _cli(self, env: dict[str, str], *args: str) -> str:
        done = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "aiops_cli", *args], env=env, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise DemoError(f"aiops {' '.join(args[:2])} failed: {done.stderr.strip() or done.stdout.strip()}")
        return done.stdout

    async def _backfill(self) -> float:
        """Post the history, then the seconds its posting took, so live data starts where history ends (a gap
        would be a window of missing traffic); when it starts."""
        from aiops_cli.demo.history import backfill

        end = time.time()
        start = end - self.backfill_s
        self.say(f"backfilling {self.backfill_s / 60:.1f} minutes of shop history ...")
        began = time.monotonic()
        spans = await asyncio.to_thread(backfill, self.ingest_url, ShopState(), start, end, self.settings.demo_seed)
        now = time.time()
        spans += await asyncio.to_thread(backfill, self.ingest_url, ShopState(), end, now, self.settings.demo_seed + 2)
        self.say(f"history posted: {spans} spans and the shop's gauges in {time.monotonic() - began:.1f} s")
        return start

    async def _until_warm(self, history_start: float) -> None:
        """Set :attr:`warm` once every shop service's latency series holds the windows detection needs before it
        judges one (read back from the TSDB through the gateway: a window the platform has not stored yet, or
        dropped, does not count)."""
        needs = min_history(self.backfill_s, self.options.warm_windows)
        query = f"{self.gateway_url}/api/v1/metrics/query"
        async with httpx.AsyncClient(timeout=10, headers={"Authorization": f"Bearer {self.key}"}) as client:
            while True:
                counts: dict[str, int] = {}
                for service in SERVICES:
                    params = {
                        "name": "red.latency_s:value_10s",
                        "match": f"service={service}",
                        "start": str(int(history_start) - WINDOW_S),
                    }
                    try:
                        answer = await client.get(query, params=params)
                        found = answer.json().get("series", []) if answer.status_code == 200 else []
                    except (httpx.HTTPError, ValueError):
                        found = []
                    counts[service] = max((len(s.get("points", [])) for s in found), default=0)
                if min(counts.values()) >= needs:
                    self.warm.set()
                    self.say(f"detection is warm ({needs} windows of every service): inject a fault")
                    return
                await asyncio.sleep(2.0)

    def _banner(self, control_url: str) -> None:
        self.say("")
        self.say(f"operator UI: {self.gateway_url}/   (paste this admin key to sign in)")
        self.say(f"admin key:   {self.key}")
        self.say(f"shop control API: {control_url}/status")
        warm = self.options.warm_windows * WINDOW_S + 10
        self.say(f"detection is warm about {warm} s from now (this terminal says when); then inject a fault:")
        self.say("  aiops demo fault payment latency|errors|cpu|bad-deploy [--for 5m]")
        self.say("")

    # ---------------------------------------------------------------- live

    async def _live(self, shop: Any) -> None:
        next_tick = time.monotonic()
        while True:
            next_tick += 1.0
            await asyncio.to_thread(shop.tick, time.time())
            await asyncio.sleep(max(0.0, next_tick - time.monotonic()))

    async def _on_fault(self, fault: Fault) -> None:
        self.runs.append(LoopTimings.of(fault))
        self.say(f"fault {fault.kind.value} on {fault.service} from {fault.to_json()['started_at']} ({fault.id})")
        if fault.kind is FaultKind.BAD_DEPLOY:
            state = self.state.services[fault.service]
            event = {
                "service": fault.service,
                "version": state.version,
                "previous_version": state.previous_version,
                "author": "aiops-demo",
                "description": f"deploy {fault.service} {state.version}",
                "timestamp": int(fault.started_at * 1000),
            }
            async with httpx.AsyncClient(timeout=10) as client:
                response = await client.post(f"{self.ingest_url}/api/v1/events/deployment", json=event)
            self.say(f"deployment event {fault.service} {state.version}: {response.status_code}")

    async def _on_change(self, service: str, action: str, state: ServiceState) -> None:
        self.say(f"shop: {action} {service} -> replicas {state.replicas}, version {state.version}")

    def _notified(self, line: str) -> None:
        self.say(line)
        if self.runs:
            self.runs[-1].notified(line.split("]")[0].strip("["))

    # ---------------------------------------------------------------- follow

    async def _follow(self, data_dir: Path) -> None:
        """Read anomalies, incidents, RCA results and executions from now on; feed each fault run's timings."""
        from aiokafka import AIOKafkaConsumer, TopicPartition
        from aiops_common.broker import bootstrap_servers

        from aiops_cli.tail import records_of

        run_state = RunState.read(data_dir)
        assert run_state is not None
        specs = {
            s.full_name(run_state.topic_prefix): s
            for s in (Topics.ANOMALIES, Topics.INCIDENTS, Topics.RCA_RESULTS, Topics.ACTIONS)
        }
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers(run_state.broker_url), group_id=None, enable_auto_commit=False
        )
        await consumer.start()
        try:
            tps = [TopicPartition(name, p) for name, s in specs.items() for p in range(s.partitions)]
            consumer.assign(tps)
            await consumer.seek_to_end(*tps)
            while True:
                batch = await consumer.getmany(*tps, timeout_ms=500)
                now = time.time()
                for tp, messages in batch.items():
                    spec = specs[tp.topic]
                    for message in messages:
                        if message.value is None:
                            continue
                        for record in records_of(spec, message.value):
                            self._observe(spec.name, record, now)
        finally:
            await consumer.stop()

    def _observe(self, topic: str, record: dict[str, Any], now: float) -> None:
        for run in self.runs:
            if "outcome" in run.seconds:
                continue
            for line in run.observe(topic, record, now):
                self.say(f"[{run.service}:{run.kind}] {line}")
            if "outcome" in run.seconds and run.fault_id not in self._written:
                self._written.add(run.fault_id)
                self._record(run)

    def _record(self, run: LoopTimings) -> None:
        if self.options.results is not None:
            write_results(self.options.results, run, f"{os.cpu_count()} cores")
        self.say("")
        self.say(render_table([r for r in self.runs if "outcome" in r.seconds or r is run]))
        self.say("")

    # ---------------------------------------------------------------- scripted

    async def _scripted(self, service: str, kind: str) -> int:
        self.say(f"live traffic for {self.options.warmup_s:.0f} s before the fault ...")
        await asyncio.sleep(self.options.warmup_s)
        try:
            await asyncio.wait_for(self.warm.wait(), self.options.timeout_s)
        except TimeoutError:
            raise DemoError(f"detection was not warm {self.options.timeout_s:.0f} s after the warm-up") from None
        # Onset just after a window starts: the first window the fault touches is wholly faulty. A fault late in a
        # window makes that window's ranking from a fraction of it, and the runbook is proposed on the first one.
        # A bad deploy's failures begin a rollout after its deployment event.
        delay = ROLLOUT_S if kind == FaultKind.BAD_DEPLOY.value else 0.0
        now = time.time() + delay
        await asyncio.sleep((WINDOW_S - now % WINDOW_S + 0.5) % WINDOW_S)
        fault = self.state.inject(service, kind, self.options.fault_for_s, time.time())
        await self._on_fault(fault)
        run = self.runs[-1]
        deadline = time.monotonic() + self.options.timeout_s
        async with httpx.AsyncClient(timeout=10, headers={"Authorization": f"Bearer {self.key}"}) as client:
            while time.monotonic() < deadline and run.status not in _DONE:
                if self.options.approve and run.status == "pending_approval" and run.execution_id not in self._approved:
                    self._approved.add(run.execution_id)
                    response = await client.post(
                        f"{self.gateway_url}/api/v1/approvals/{run.execution_id}/approve",
                        json={"comment": "approved by the scripted demo run"},
                    )
                    self.say(f"approve {run.execution_id}: {response.status_code} {response.text[:200]}")
                await asyncio.sleep(0.5)
        if run.fault_id not in self._written:
            self._written.add(run.fault_id)
            if run.status not in _DONE:
                run.status = run.status or "timed out"
            self._record(run)
        self.say(
            f"loop {'closed' if run.closed else 'NOT closed'}: top cause {run.top_cause or '-'} "
            f"(fault on {service}), execution {run.status or '-'}, "
            f"notifications {run.notifications or 'none'}; at {datetime.now(UTC):%H:%M:%S} UTC"
        )
        return 0 if run.closed else 1


def _spawn_up(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "aiops_cli", "up"], env=env, stdout=out, stderr=subprocess.STDOUT
        )


def known_kinds() -> list[str]:
    return [k.value for k in FaultKind]


def known_services() -> list[str]:
    return list(SERVICES)
