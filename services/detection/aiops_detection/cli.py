"""Detection's own ``aiops`` commands: ``train`` (cascades on TSDB history) and ``feedback`` (label an anomaly).

Heavy imports (torch, the detectors) happen inside the commands, so ``aiops --help`` stays fast.
"""

from __future__ import annotations

import asyncio
import getpass
import re
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from aiops_common.labels import parse_labels

if TYPE_CHECKING:
    from aiops_common.models import ModelVersion
    from aiops_common.schemas import FeedbackRecord

    from aiops_detection.service_settings import DetectionServiceSettings

__all__ = ["commands", "feedback", "parse_duration_s", "train"]

commands = typer.Typer()
"""Joined to the ``aiops`` command line by the detection service's spec (``aiops_detection.service``)."""

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration_s(text: str) -> float:
    """``90m``, ``36h``, ``7d``, ``2w`` or plain seconds.

    >>> parse_duration_s("36h"), parse_duration_s("600")
    (129600.0, 600.0)
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if match is None:
        raise typer.BadParameter(f"not a duration: {text!r} (e.g. 90m, 36h, 7d)")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


async def _train(
    settings: DetectionServiceSettings,
    names: list[str],
    labels: dict[str, str],
    lengths_ms: tuple[int, ...],
    start_ms: int,
    end_ms: int,
    use_feedback: bool,
) -> list[ModelVersion]:
    import torch
    from aiops_common.feedback import open_feedback_store
    from aiops_common.models import open_model_registry
    from aiops_common.schemas import FeedbackLabel
    from aiops_common.tsdb import open_tsdb
    from tqdm import tqdm

    from aiops_detection.detectors.series_detectors import cascade_params
    from aiops_detection.detectors.trained_models import encode_models, load_history, model_name, train_all

    if settings.detect_torch_threads:
        torch.set_num_threads(settings.detect_torch_threads)
    tsdb = open_tsdb(settings.tsdb_url)
    registry = open_model_registry(settings.model_url)
    incidents = []
    if use_feedback:
        store = open_feedback_store(settings.feedback_url)
        incidents = await store.labelled_anomalies(FeedbackLabel.TRUE_POSITIVE)
        await store.close()
    stored = []
    try:
        for length in lengths_ms:
            name = model_name(length)
            history = await load_history(tsdb, names, labels, start_ms, end_ms, length)
            total = sum(int(s.values.size) for s in history)
            if total == 0:
                typer.echo(f"{name}: no history in {settings.tsdb_url} for that selection")
                continue
            with tqdm(total=total, unit="pt", desc=name, dynamic_ncols=True) as bar:
                result = await asyncio.to_thread(train_all, history, length, settings, incidents, bar.update)
            if not result.series:
                typer.echo(f"{name}: none of the {len(history)} series takes a cascade")
                continue
            meta = await registry.put(
                name,
                encode_models(result.series),
                training_start_ms=min(int(s.ts_ms[0]) for s in history if s.ts_ms.size),
                training_end_ms=max(t.end_ms for t in result.series.values()),
                metrics=result.metrics(),
                params={
                    "cascade": cascade_params(settings, length),
                    "tsdb": settings.tsdb_url,
                    "selection": {"names": names, "labels": labels},
                },
            )
            typer.echo(
                f"{name} version {meta.version}: {len(result.series)} series, {result.points} points"
                f" ({result.imputed} held for labelled incidents) in {result.seconds:.1f}s -> {settings.model_url}"
            )
            stored.append(meta)
    finally:
        await tsdb.close()
        await registry.close()
    return stored


@commands.command()
def train(
    names: Annotated[
        list[str] | None, typer.Argument(help="Feature series names, e.g. red.latency_s; none: every series.")
    ] = None,
    label: Annotated[list[str] | None, typer.Option("--label", "-l", help="Only series with name=value.")] = None,
    window: Annotated[
        int | None, typer.Option(help="Window length in seconds; default: every one detection watches.")
    ] = None,
    since: Annotated[str, typer.Option(help="How much history before --end, e.g. 36h, 7d.")] = "7d",
    end: Annotated[datetime | None, typer.Option(help="End of the history (ISO time); default: now.")] = None,
    tsdb: Annotated[str | None, typer.Option(help="TSDB URL; default AIOPS_TSDB_URL.")] = None,
    models: Annotated[str | None, typer.Option(help="Model registry URL; default AIOPS_DETECT_MODEL_URL.")] = None,
    use_feedback: Annotated[
        bool, typer.Option(help="Hold windows that operators labelled true positives at the last normal value.")
    ] = True,
) -> None:
    """Train the detection cascades (tiers 1-3) on TSDB history; running workers pick the new version up."""
    from aiops_detection.service_settings import DetectionServiceSettings

    settings = DetectionServiceSettings()
    overrides = {k: v for k, v in {"tsdb_url": tsdb, "detect_model_url": models}.items() if v}
    settings = settings.model_copy(update=overrides)
    end_ms = int((end.timestamp() if end is not None else time.time()) * 1000)
    start_ms = end_ms - int(parse_duration_s(since) * 1000)
    lengths = (window * 1000,) if window else settings.window_lengths_ms
    stored = asyncio.run(
        _train(settings, list(names or []), parse_labels(label or []), lengths, start_ms, end_ms, use_feedback)
    )
    if not stored:
        raise typer.Exit(code=1)


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=1)


async def _send_label(record: FeedbackRecord, force: bool, settings: DetectionServiceSettings) -> None:
    from aiops_common.broker.publisher import Message
    from aiops_common.feedback import open_feedback_store
    from aiops_common.run_state import PlatformNotRunningError, publish_to_platform
    from aiops_common.topics import Topics

    if not force:
        store = open_feedback_store(settings.feedback_url)
        try:
            known = await store.anomaly(record.subject_id)
        finally:
            await store.close()
        if known is None:
            raise _fail(
                f"no anomaly {record.subject_id!r} in the feedback store {settings.feedback_url}, where the detection"
                " service archives every anomaly it publishes. Check the id (`aiops tail anomalies`); if the"
                " platform keeps its feedback store elsewhere (AIOPS_FEEDBACK_URL), or the anomaly was only"
                " just published, give --force: the label is kept and applied when the anomaly is archived."
            )
    try:
        # Keyed by its subject, as the topic says: every label on one anomaly stays in order.
        await publish_to_platform(settings, [Message(Topics.FEEDBACK, record.encode(), key=record.subject_id.encode())])
    except PlatformNotRunningError as exc:
        raise _fail(str(exc)) from None


@commands.command()
def feedback(
    anomaly_id: Annotated[str, typer.Argument(help="The anomaly's id, as `aiops tail anomalies` shows it.")],
    false_positive: Annotated[
        bool, typer.Option("--false-positive", help="Not an anomaly: make its series less sensitive.")
    ] = False,
    true_positive: Annotated[bool, typer.Option("--true-positive", help="A real anomaly: keep or tighten.")] = False,
    note: Annotated[str, typer.Option(help="Why, for whoever retrains or reviews.")] = "",
    by: Annotated[str | None, typer.Option(help="Who labels it; default: the current user.")] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Send the label even if the feedback store does not know the anomaly (yet); it waits there for it.",
        ),
    ] = False,
) -> None:
    """Label an anomaly a true or a false positive; the detection service moves its series' threshold.

    The id is checked against the feedback store (AIOPS_FEEDBACK_URL) first: an unknown id exits 1.
    """
    from aiops_common.schemas import FeedbackLabel, FeedbackRecord

    from aiops_detection.service_settings import DetectionServiceSettings

    if false_positive == true_positive:
        raise _fail("give exactly one of --false-positive and --true-positive")
    label = FeedbackLabel.FALSE_POSITIVE if false_positive else FeedbackLabel.TRUE_POSITIVE
    record = FeedbackRecord(
        subject_id=anomaly_id, label=label, by=by or getpass.getuser(), at=datetime.now(UTC), note=note
    )
    asyncio.run(_send_label(record, force, DetectionServiceSettings()))
    typer.echo(f"{label.value} on {anomaly_id} ({record.id})")
