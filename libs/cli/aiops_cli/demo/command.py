"""The ``aiops demo`` commands: run the demo, inject and clear faults, read the shop's state."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from aiops_cli.demo.faults import SERVICES, FaultKind, ShopError, parse_duration
from aiops_cli.settings import PlatformSettings

__all__ = ["group"]

MIN_BACKFILL_S = 360.0

group = typer.Typer(
    help="The whole loop in one command: the platform, a simulated shop with faults on command, the timings.",
    invoke_without_command=True,
)


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=1)


def _control_url(settings: PlatformSettings) -> str:
    return f"http://{settings.demo_control_host}:{settings.demo_control_port}"


def _call(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    url = _control_url(PlatformSettings()) + path
    try:
        response = httpx.request(method, url, json=body, timeout=10)
    except httpx.HTTPError:
        raise _fail(f"no demo answers at {url}; start one with `aiops demo` (or `make demo`)") from None
    if response.status_code >= 400:
        try:
            message = response.json().get("error", response.text)
        except ValueError:
            message = response.text
        raise _fail(str(message))
    return response.json()


def _session(**options: Any) -> int:
    from aiops_common.extras import MissingExtraError, requires_extra

    try:
        with requires_extra("host-metrics", "the demo's shop (the OpenTelemetry SDK)"):
            import aiops_cli.demo.shop  # noqa: F401  # its SDK, before anything starts
    except MissingExtraError as exc:
        raise _fail(str(exc)) from None
    from aiops_cli.demo.session import DemoError, DemoOptions, DemoSession

    session = DemoSession(PlatformSettings(), DemoOptions(**options, out=lambda line: typer.echo(line)))
    try:
        return asyncio.run(session.run())
    except DemoError as exc:
        raise _fail(str(exc)) from None
    except (KeyboardInterrupt, asyncio.CancelledError):
        return 0  # Ctrl-C or SIGTERM: everything was stopped on the way out


_BACKFILL_HELP = "History posted before the shop goes live (6m..24h, e.g. 10m); default AIOPS_DEMO_BACKFILL_S (30m)."
_VERIFY_HELP = "How long a runbook's check must hold after it acted (0s..180s); default as the runbooks say (30s)."
_WARM_HELP = "Live 10 s windows after the history that detection learns from before it judges any (1..30); default 4."


def _durations(backfill: str | None, verify_for: str | None, warm_windows: int | None) -> dict[str, Any]:
    """The demo's --backfill and --verify-for as seconds, and --warm-windows: the ones given."""
    try:
        backfill_s = None if backfill is None else parse_duration(backfill)
        verify_for_s = (
            None if verify_for is None else (0.0 if verify_for.strip() in {"0", "0s"} else parse_duration(verify_for))
        )
    except ShopError as exc:
        raise _fail(str(exc)) from None
    if backfill_s is not None and backfill_s < MIN_BACKFILL_S:
        # The RCA's baseline is what came more than 5 minutes before onset: a shorter history leaves it none.
        raise _fail("--backfill takes 6m or more (the root-cause analysis compares with what came 5 minutes before)")
    if verify_for_s is not None and verify_for_s > 180:
        raise _fail("--verify-for takes at most 180s (the runbooks' checks give up after 180 s)")
    if warm_windows is not None and not 1 <= warm_windows <= 30:
        raise _fail("--warm-windows takes 1 to 30 windows")
    given = {"backfill_s": backfill_s, "verify_for_s": verify_for_s, "warm_windows": warm_windows}
    return {name: value for name, value in given.items() if value is not None}


@group.callback(invoke_without_command=True)
def demo(
    ctx: typer.Context,
    backfill: Annotated[str | None, typer.Option(help=_BACKFILL_HELP)] = None,
    verify_for: Annotated[str | None, typer.Option("--verify-for", help=_VERIFY_HELP)] = None,
    warm_windows: Annotated[int | None, typer.Option(help=_WARM_HELP)] = None,
) -> None:
    """Start the platform and the shop (frontend -> checkout -> payment -> database, checkout -> inventory);
    Ctrl-C stops both. State in .aiops-demo (or AIOPS_DATA_DIR)."""
    if ctx.invoked_subcommand is None:
        # Interactive: the timings stay with the demo's state; only `aiops demo run` adds to the benchmark's file.
        raise typer.Exit(_session(results=None, **_durations(backfill, verify_for, warm_windows)))


@group.command()
def fault(
    service: Annotated[str, typer.Argument(help=f"One of: {', '.join(SERVICES)}")],
    kind: Annotated[str, typer.Argument(help=f"One of: {', '.join(k.value for k in FaultKind)}")],
    for_: Annotated[str, typer.Option("--for", help="How long: 90s, 5m, 1h.")] = "5m",
) -> None:
    """Inject a fault into the running demo's shop."""
    try:
        seconds = parse_duration(for_)
    except ShopError as exc:
        raise _fail(str(exc)) from None
    made = _call("POST", "/faults", {"service": service, "kind": kind, "for_s": seconds})
    typer.echo(f"fault {made['id']}: {made['kind']} on {made['service']} from {made['started_at']} to {made['until']}")


@group.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="The control API's answer as is.")] = False) -> None:
    """Each shop service's replicas, version and health, and the faults in effect."""
    state = _call("GET", "/status")
    if as_json:
        typer.echo(json.dumps(state, indent=2))
        return
    for name, svc in state["services"].items():
        health = "healthy" if svc["healthy"] else "UNHEALTHY"
        typer.echo(f"{name:<10} {svc['version']:<8} replicas {svc['replicas']:<3} {health}")
    for item in state["faults"]:
        typer.echo(f"fault {item['id']}: {item['kind']} on {item['service']} until {item['until']}")
    if not state["faults"]:
        typer.echo("no faults")


@group.command()
def clear(fault_id: Annotated[str | None, typer.Argument(help="One fault; default: all.")] = None) -> None:
    """End the faults (a bad deploy's version stays until rolled back)."""
    done = _call("DELETE", f"/faults/{fault_id}" if fault_id else "/faults")
    typer.echo(f"{done['cleared']} fault(s) cleared")


@group.command("run")
def run_scripted(
    fault_spec: Annotated[str, typer.Option("--fault", help="SERVICE:KIND, e.g. payment:latency.")] = "payment:latency",
    approve: Annotated[bool, typer.Option("--approve", help="Approve the proposed execution (admin key).")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds from the fault to give up.")] = 300.0,
    warmup: Annotated[float, typer.Option(help="Seconds of live traffic before the fault.")] = 60.0,
    results: Annotated[Path, typer.Option(help="Where the timings are appended.")] = Path(
        "benchmarks/results/demo.json"
    ),
    backfill: Annotated[str | None, typer.Option(help=_BACKFILL_HELP)] = None,
    verify_for: Annotated[str | None, typer.Option("--verify-for", help=_VERIFY_HELP)] = None,
    warm_windows: Annotated[int | None, typer.Option(help=_WARM_HELP)] = None,
) -> None:
    """Scripted loop for measurement and CI: start everything, inject the fault once warm, approve, wait for the
    outcome, write the timings, stop; exit 1 when the loop did not close."""
    service, _, kind = fault_spec.partition(":")
    if service not in SERVICES or kind not in {k.value for k in FaultKind}:
        raise _fail(
            f"--fault takes SERVICE:KIND with a service of {', '.join(SERVICES)} and a kind of "
            f"{', '.join(k.value for k in FaultKind)}"
        )
    code = _session(
        fault=(service, kind),
        approve=approve,
        timeout_s=timeout,
        warmup_s=warmup,
        results=results,
        **_durations(backfill, verify_for, warm_windows),
    )
    raise typer.Exit(code)
