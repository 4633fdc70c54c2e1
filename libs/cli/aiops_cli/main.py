"""Entry point of the ``aiops`` command."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from aiops_common.broker import BrokerStartError
from aiops_common.extras import MissingExtraError, requires_extra
from aiops_common.labels import parse_labels
from aiops_common.run_state import RunState, running_broker
from aiops_common.service import ServiceStartError, discover_services
from aiops_common.topics import ALL_TOPICS

from aiops_cli.settings import PlatformSettings

__all__ = ["app"]

app = typer.Typer(help="AIOps platform: ingest telemetry, detect anomalies, find root causes.", no_args_is_help=True)

#: Every installed service, found by entry point (``aiops.services``): the CLI imports no service itself.
SERVICES = discover_services()


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=1)


def _broker_url(settings: PlatformSettings) -> tuple[str, str]:
    """The broker to talk to: AIOPS_BROKER_URL, else the one ``aiops up`` started; plus the topic prefix."""
    found = running_broker(settings)
    if found is None:
        raise _fail(f"no platform is running from {settings.data_dir} and AIOPS_BROKER_URL is not set (run `aiops up`)")
    return found


@app.command()
def up(
    host_metrics: Annotated[bool, typer.Option(help="Report this host's own metrics through OTLP.")] = True,
) -> None:
    """Run the whole platform in one process: broker (unless AIOPS_BROKER_URL is set), every agent, every server."""
    settings = PlatformSettings()
    if not host_metrics:
        settings = settings.model_copy(update={"host_metrics": False})
    _run(list(SERVICES), settings, embedded=not settings.broker_url, app_name="platform")


@app.command()
def worker(
    service: Annotated[str, typer.Argument(help=f"One of: {', '.join(SERVICES)}")],
) -> None:
    """Run one service's agents (and servers) against the external broker at AIOPS_BROKER_URL."""
    if service not in SERVICES:
        raise _fail(f"unknown service {service!r}; choose one of {', '.join(SERVICES)}")
    settings = PlatformSettings()
    if not settings.broker_url:
        raise _fail("AIOPS_BROKER_URL must name the broker (e.g. kafka://kafka:9092); `aiops up` embeds one")
    _run([service], settings.model_copy(update={"host_metrics": False}), embedded=False, app_name=service)


def _run(names: list[str], settings: PlatformSettings, embedded: bool, app_name: str) -> None:
    from aiops_cli.runner import run_services

    try:
        run_services(names, settings, embedded, app_name)
    except (BrokerStartError, ServiceStartError, MissingExtraError) as exc:
        raise _fail(str(exc)) from None


@app.command()
def tail(
    topic: Annotated[str, typer.Argument(help="Topic name from the topic table, e.g. metrics.raw")],
    max_records: Annotated[int | None, typer.Option("--max", "-n", help="Stop after N records.")] = None,
    from_beginning: Annotated[bool, typer.Option("--from-beginning", help="Start at the oldest record.")] = False,
    idle_timeout: Annotated[
        float | None, typer.Option(help="Stop when nothing new arrives for this many seconds.")
    ] = None,
) -> None:
    """Print a topic's records as JSON lines (one per sample, row or record), like kcat."""
    from aiops_cli.tail import tail_topic

    specs = {s.name: s for s in ALL_TOPICS}
    if topic not in specs:
        raise _fail(f"unknown topic {topic!r}; known: {', '.join(specs)}")
    settings = PlatformSettings()
    url, prefix = _broker_url(settings)
    try:
        asyncio.run(tail_topic(url, specs[topic], prefix, max_records, from_beginning, idle_timeout))
    except LookupError as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        pass


@app.command()
def status() -> None:
    """Show the broker, each topic's size, each service's liveness, consumer lag, drops and models in use.

    Run from any folder below the platform's: the data folder is AIOPS_DATA_DIR, else the nearest `.aiops` upward.
    """
    from aiops_cli.status import describe_worker, find_data_dir, http_status, topic_status, worker_status

    settings = PlatformSettings()
    settings = settings.model_copy(update={"data_dir": find_data_dir(settings)})
    url, prefix = _broker_url(settings)
    state = RunState.read(settings.data_dir)
    typer.echo(f"broker   {url}{' (embedded)' if state and state.embedded_broker else ''}")
    if state is not None:
        typer.echo(f"services {', '.join(state.services)} (pid {state.pid})")
    try:
        topics = asyncio.run(topic_status(url, prefix))
    except ConnectionError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"\n{'topic':<28}{'partitions':>11}{'messages':>12}")
    for t in topics:
        typer.echo(f"{t.name:<28}{t.partitions:>11}{t.messages:>12}")
    if state is not None and state.http_url:
        typer.echo("")
        for path, result in http_status(state.http_url).items():
            typer.echo(f"ingestion {path:<8} {result}")
    if state is not None and state.gateway_url:
        typer.echo("")
        for path, result in http_status(state.gateway_url).items():
            typer.echo(f"gateway {path:<10} {result}")
        typer.echo(f"operator UI and REST API: {state.gateway_url} (a key: `aiops keys create NAME --role admin`)")
    if state is not None and state.probe_url:
        typer.echo("")
        for line in describe_worker(state.services, worker_status(state.probe_url)):
            typer.echo(line)


@app.command()
def config() -> None:
    """List every setting of every service: environment variable, current value, meaning."""
    seen: set[str] = set()
    for entry in [None, *SERVICES.values()]:
        settings = PlatformSettings() if entry is None else entry.load_settings()
        typer.secho(f"\n[{'platform' if entry is None else entry.name}]", bold=True)
        for name, field in type(settings).model_fields.items():
            if name in seen:
                continue
            seen.add(name)
            value = getattr(settings, name)
            secret = "secret" in name or "password" in name or "token" in name
            shown = "***" if secret and value else repr(value)
            typer.echo(f"  AIOPS_{name.upper():<36} {shown:<28} {field.description or ''}")


@app.command()
def replay(
    path: Annotated[Path, typer.Argument(help="CSV file: a time column and one or more value columns.")],
    name: Annotated[
        str | None, typer.Option(help="Series name; default: the file's name (plus _<column> for several columns).")
    ] = None,
    label: Annotated[list[str] | None, typer.Option(help="name=value, repeatable: labels of every series.")] = None,
    time_column: Annotated[str, typer.Option(help="Column with RFC 3339 times or Unix seconds/ms.")] = "timestamp",
    value_column: Annotated[
        list[str] | None, typer.Option(help="Column to send, repeatable; default: every other numeric column.")
    ] = None,
    keep_time: Annotated[
        bool, typer.Option("--keep-time", help="Send the file's own times instead of moving them up to now.")
    ] = False,
    url: Annotated[
        str | None, typer.Option(help="Ingestion HTTP URL; default: that of the platform `aiops up` runs.")
    ] = None,
    batch: Annotated[int, typer.Option(min=1, help="Samples per request.")] = 2000,
) -> None:
    """Send a CSV of timestamped values through the ingestion API, in time order, each request acknowledged.

    By default the times move forward by whole minutes so the last sample lands now;
    the ingestion service refuses samples older than AIOPS_INGEST_MAX_SAMPLE_AGE_S
    (31 days unless set; 0 turns the check off), so start it with a larger value for
    longer files. A running platform windows the history of a new series by that
    series' own clock. Follow the anomalies with `aiops tail anomalies`.
    """
    from tqdm import tqdm

    from aiops_cli.replay import ReplayError, describe, read_series, sample_requests, send, shift_to_end

    settings = PlatformSettings()
    if url is None:
        state = RunState.read(settings.data_dir)
        if state is None or not state.http_url:
            raise _fail(f"no platform is running from {settings.data_dir}; start `aiops up` or give --url")
        url = state.http_url
    try:
        series = read_series(path, time_column, value_column or [], name, parse_labels(label or []))
        if not keep_time:
            series = shift_to_end(series, int(time.time() * 1000))
        typer.echo(describe(series))
        total = sum(s.ts_ms.size for s in series)
        with tqdm(total=total, unit="sample", disable=None) as bar:
            sent = send(url, sample_requests(series, batch), progress=bar.update)
    except ReplayError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"{sent} samples acknowledged by {url}")


def _add_service_commands() -> None:
    """Each service's own commands (``aiops train`` from detection) join the ``aiops`` command line."""
    for spec in SERVICES.values():
        try:
            commands = spec.load_commands()
        except MissingExtraError:
            continue  # not installed in this image; `aiops worker NAME` says which extra to add
        if commands is None:
            continue
        for command in commands.registered_commands:
            if command.callback is not None:
                name = command.name or command.callback.__name__.replace("_", "-")
                command.callback = _naming_the_extra(command.callback, spec.extra or spec.name, f"aiops {name}")
        app.add_typer(commands)


def _naming_the_extra(callback: Callable[..., Any], extra: str, what: str) -> Callable[..., Any]:
    """``callback`` failing as one line naming ``extra`` when a dependency it imports on use is not installed."""

    @functools.wraps(callback)  # typer reads the options from the wrapped signature
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            with requires_extra(extra, what):
                return callback(*args, **kwargs)
        except MissingExtraError as exc:
            raise _fail(str(exc)) from None

    return run


_add_service_commands()

from aiops_cli.demo.command import group as _demo  # noqa: E402  # the demo's commands, after every service's

app.add_typer(_demo, name="demo")
