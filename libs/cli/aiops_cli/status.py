"""``aiops status``: is the platform up, what does each topic hold, are its workers live, lagging or dropping."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from aiops_common.broker import bootstrap_servers
from aiops_common.run_state import RunState
from aiops_common.settings import CommonSettings
from aiops_common.topics import ALL_TOPICS
from prometheus_client.parser import text_string_to_metric_families

__all__ = [
    "TopicStatus",
    "WorkerStatus",
    "describe_worker",
    "find_data_dir",
    "http_status",
    "read_metrics",
    "topic_status",
    "worker_status",
]

_DROPS = re.compile(r".*drop.*_total$")
"""Every counter of skipped input, whatever layer adds it (``aiops_agent_dropped_records_total``, the stream's ...)."""
_MODELS = re.compile(r".*model.*(_info|_version)$")
"""The models in use: an info series (labels say it all) or a version gauge (its value is the version)."""


@dataclass(frozen=True, slots=True)
class TopicStatus:
    name: str
    partitions: int
    messages: int  # sum over partitions of (end offset - beginning offset)


async def topic_status(broker_url: str, prefix: str) -> list[TopicStatus]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers(broker_url), group_id=None)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()  # metadata is lazy in aiokafka
        out = []
        for spec in ALL_TOPICS:
            name = spec.full_name(prefix)
            parts = consumer.partitions_for_topic(name)
            if not parts:
                out.append(TopicStatus(name, 0, 0))
                continue
            tps = [TopicPartition(name, p) for p in parts]
            ends = await consumer.end_offsets(tps)
            begins = await consumer.beginning_offsets(tps)
            out.append(TopicStatus(name, len(tps), sum(ends[tp] - begins[tp] for tp in tps)))
        return out
    except KafkaError as exc:
        raise ConnectionError(f"broker {broker_url} did not answer: {exc}") from exc
    finally:
        await consumer.stop()


def http_status(base_url: str, timeout_s: float = 2.0) -> dict[str, str]:
    out = {}
    for path in ("/health", "/ready"):
        try:
            response = httpx.get(base_url + path, timeout=timeout_s)
            out[path] = f"{response.status_code} {response.json().get('status', '')}"
        except (httpx.HTTPError, ValueError) as exc:
            out[path] = f"unreachable ({type(exc).__name__})"
    return out


def find_data_dir(settings: CommonSettings, cwd: Path | None = None) -> Path:
    """The platform's data folder: AIOPS_DATA_DIR when set, else the nearest ``.aiops`` with a run state upward."""
    if "data_dir" in settings.model_fields_set or settings.data_dir.is_absolute():
        return settings.data_dir
    start = (cwd or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        candidate = folder / settings.data_dir
        if RunState.path(candidate).exists():
            return candidate
    return settings.data_dir


@dataclass(slots=True)
class WorkerStatus:
    """What one worker's probe server says: liveness, readiness and the figures of its ``/metrics``."""

    url: str
    health: str
    ready: str
    lag: dict[str, list[float]] = field(default_factory=dict)  # topic -> lag of each assigned partition
    drops: dict[str, float] = field(default_factory=dict)  # 'metric{labels}' -> count
    records_in: dict[str, float] = field(default_factory=dict)  # agent -> messages taken
    models: list[dict[str, str]] = field(default_factory=list)  # labels (and version) of each model in use


def _labels(labels: dict[str, str]) -> str:
    return ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))


def worker_status(url: str, timeout_s: float = 2.0) -> WorkerStatus:
    probes = http_status(url, timeout_s)
    status = WorkerStatus(url, probes["/health"], probes["/ready"])
    try:
        text = httpx.get(url + "/metrics", timeout=timeout_s).text
    except httpx.HTTPError:
        return status
    read_metrics(status, text)
    return status


def read_metrics(status: WorkerStatus, text: str) -> None:
    """Fill ``status`` from a worker's ``/metrics`` text: lag, records in, non-zero drops, models in use."""
    lag: dict[str, list[float]] = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "aiops_consumer_lag":
                lag[sample.labels["topic"]].append(sample.value)
            elif sample.name == "aiops_agent_records_in_total":
                status.records_in[sample.labels["agent"]] = sample.value
            elif _DROPS.match(sample.name) and sample.value:
                status.drops[f"{sample.name}{{{_labels(sample.labels)}}}"] = sample.value
            elif _MODELS.match(sample.name) and sample.value:
                version = {} if sample.name.endswith("_info") else {"version": str(int(sample.value))}
                status.models.append({**sample.labels, **version})
    status.lag = dict(lag)


def describe_worker(services: list[str], status: WorkerStatus) -> list[str]:
    """Lines for ``aiops status``: each service's liveness, then the worker's lag, drops and models."""
    live = "live" if status.health.startswith("200") else "DOWN"
    lines = [f"{'service':<14}{'state':<7}{'health':<24}ready   (probes at {status.url})"]
    lines += [f"{name:<14}{live:<7}{status.health:<24}{status.ready}" for name in services]
    if status.lag:
        lines.append(f"\n{'consumer lag: topic':<56}{'partitions':>11}{'lag':>10}{'max':>8}")
        for topic, values in sorted(status.lag.items()):
            lines.append(f"{topic:<56}{len(values):>11}{int(sum(values)):>10}{int(max(values)):>8}")
    lines.append(f"\n{'records in: agent':<56}{'messages':>12}")
    for agent, count in sorted(status.records_in.items()):
        lines.append(f"{agent:<56}{int(count):>12}")
    lines.append("\ndrops" + ("" if status.drops else ": none"))
    for name, count in sorted(status.drops.items()):
        lines.append(f"  {name} {int(count)}")
    if status.models:
        lines.append("\nmodels in use")
        for labels in status.models:
            lines.append("  " + " ".join(f"{k}={v}" for k, v in sorted(labels.items())))
    return lines
