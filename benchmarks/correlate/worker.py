"""The storm through one real correlation worker on the embedded broker: alerts/s and alert -> incident latency."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgpack
import psutil
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiops_cli.testing import WorkerProcess, worker_env
from aiops_common.broker import EmbeddedBroker, Publisher, bootstrap_servers, ensure_topics, free_port
from aiops_common.broker.publisher import Message
from aiops_common.schemas import AlertRecord, AlertStatus, ChangeEvent
from aiops_common.topics import Topics
from aiops_common.topology import millis, open_topology_store

from benchmarks.correlate.storm import Storm

__all__ = ["through_worker"]

_BATCH = 500


def _iso_ms(text: str) -> int:
    from datetime import datetime

    return millis(datetime.fromisoformat(text))


class IncidentWatcher:
    """Reads ``incidents`` as the worker publishes it and notes when each alert episode first shows in one.

    Only the raw msgpack body is read (no model validation): the watcher shares the machine with the
    worker it measures.
    """

    def __init__(self, broker_url: str, prefix: str) -> None:
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers(broker_url), group_id=None)
        self.topic = Topics.INCIDENTS.full_name(prefix)
        self.pending: dict[str, dict[int, str]] = {}
        """fingerprint -> {episode onset ms -> episode uid} not seen in an incident yet."""
        self.seen_at: dict[str, float] = {}
        """Episode uid -> when the first incident record holding it was published (epoch seconds)."""
        self.first_in: dict[str, str] = {}
        """Episode uid -> the incident it first showed in."""
        self.latest: dict[str, dict[str, Any]] = {}
        self.records = 0
        self.lags: list[float] = []
        """Seconds from each record's publication to the watcher reading it (its own delay, left out)."""
        self.last_progress = time.monotonic()

    def expect(self, fingerprint: str, onset_ms: int, uid: str) -> None:
        self.pending.setdefault(fingerprint, {})[onset_ms] = uid

    async def run(self) -> None:
        await self.consumer.start()
        tp = TopicPartition(self.topic, 0)
        self.consumer.assign([tp])
        await self.consumer.seek_to_beginning(tp)
        try:
            while True:
                batch = await self.consumer.getmany(tp, timeout_ms=200)
                received = time.time()
                for message in batch.get(tp, []):
                    self.lags.append(received - message.timestamp / 1000)
                    if message.value is not None:
                        # When the worker published it (the producer's timestamp): the watcher's own
                        # delay in reading and decoding is not the worker's.
                        self._take(msgpack.unpackb(message.value, raw=False)["body"], message.timestamp / 1000)
        finally:
            await self.consumer.stop()

    def _take(self, body: dict[str, Any], published: float) -> None:
        self.records += 1
        held = self.latest.get(body["id"])
        if held is None or body["revision"] > held["revision"]:
            self.latest[body["id"]] = {
                "revision": body["revision"],
                "merged_into": body["merged_into"],
                "lead": next((m["service"] for m in body["members"] if m["lead"]), None),
            }
        for member in body["members"]:
            waiting = self.pending.get(member["fingerprint"])
            if not waiting:
                continue
            upto = _iso_ms(member["last_seen_at"] or member["started_at"])
            for onset in [o for o in waiting if o <= upto]:
                uid = waiting.pop(onset)
                self.seen_at[uid] = published
                self.first_in[uid] = body["id"]
                self.last_progress = time.monotonic()

    def final(self, incident_id: str) -> str:
        while (into := self.latest.get(incident_id, {}).get("merged_into")) is not None:
            incident_id = into
        return incident_id


async def _load_topology(storm: Storm, url: str) -> None:
    store = open_topology_store(url)
    try:
        await store.upsert_services(storm.services)
        await store.upsert_dependencies(storm.dependencies)
    finally:
        await store.close()


def _message(item: AlertRecord | ChangeEvent) -> Message:
    if isinstance(item, ChangeEvent):
        return Message(Topics.CHANGES, item.encode(), key=item.service.encode())
    return Message(Topics.ALERTS_RAW, item.encode(), key=item.fingerprint.encode())


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _cpu_s(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


async def through_worker(
    storm: Storm,
    expected: set[str],
    workdir: Path,
    pace_s: float = 0.0,
    timeout_s: float = 300.0,
    idle_s: float = 30.0,
) -> dict[str, Any]:
    """Start the broker and ``aiops worker correlation``, publish the flapping history (and wait until the
    worker has taken it), then the storm: as fast as the broker acknowledges (``pace_s`` 0), or spread
    evenly over ``pace_s`` seconds. Each firing alert's latency runs from its batch's acknowledgement to the
    first incident record on ``incidents`` that holds it. ``expected``: the storm episodes the policy run
    put into incidents (what the worker should show).

    The worker's clock ticks every second with the wall clock, and the correlator ticks at the later of
    that and the newest event time it has seen: the storm should start after now (``storm.start`` in the
    future), so each tick happens at the storm's own event time, as the policy run ticks."""
    events = storm.events()
    warm = [item for at, _, item in events if at < storm.start]
    live = [item for at, _, item in events if at >= storm.start]
    uid_of = {(e.alert.fingerprint, e.alert.starts_at): e.uid for e in storm.episodes}
    with EmbeddedBroker(log_path=workdir / "broker.log") as broker:
        prefix = f"benchcorr{uuid.uuid4().hex[:6]}."
        await ensure_topics(broker.url, prefix)
        data_dir = workdir / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        await _load_topology(storm, f"sqlite:///{data_dir / 'topology.sqlite'}")
        env = worker_env(broker.url, prefix, data_dir, log_level="WARNING", correlate_tick_s=1)
        worker = WorkerProcess.start("correlation", env, workdir / "correlation.log", http_port=free_port())
        publisher = Publisher(broker.url, prefix)
        watcher = IncidentWatcher(broker.url, prefix)
        watching: asyncio.Task[None] | None = None
        try:
            await worker.until_ready()
            await publisher.start()
            watching = asyncio.create_task(watcher.run())
            # The history Dynamic-X-Y learns the flapping alerts from, then a marker: once the marker's
            # incident is out, the worker has taken everything before it.
            for chunk in _chunks(warm, _BATCH):
                await publisher.publish([_message(item) for item in chunk])
            marker = AlertRecord(
                fingerprint=f"marker-{uuid.uuid4().hex[:8]}",
                status=AlertStatus.FIRING,
                name="BenchmarkMarker",
                service="benchmark-marker",
                starts_at=storm.start - timedelta(seconds=1),
            )
            watcher.expect(marker.fingerprint, millis(marker.starts_at), "marker")
            await publisher.publish([_message(marker)])
            deadline = time.monotonic() + timeout_s
            while "marker" not in watcher.seen_at:
                worker.check_alive()
                if time.monotonic() > deadline:
                    raise RuntimeError("the correlation worker did not take the warm-up history")
                await asyncio.sleep(0.2)  # polling the watcher's state, with a deadline
            warm_records = watcher.records

            firing = 0
            for item in live:
                if isinstance(item, AlertRecord) and item.status == AlertStatus.FIRING:
                    uid = uid_of[(item.fingerprint, item.starts_at)]
                    firing += 1
                    if uid in expected:
                        watcher.expect(item.fingerprint, millis(item.starts_at), uid)
            sent_at: dict[str, float] = {}
            cpu_before = _cpu_s(worker.proc.pid)
            started = time.monotonic()
            started_wall = time.time()
            size = _BATCH if pace_s <= 0 else max(1, len(live) // max(1, int(pace_s / 0.2)))
            for n, chunk in enumerate(_chunks(live, size)):
                if pace_s > 0:
                    # Paced: batch n leaves at its share of the pace (sleeping until then is the pacing).
                    await asyncio.sleep(max(0.0, started + n * size / len(live) * pace_s - time.monotonic()))
                await publisher.publish([_message(item) for item in chunk])
                acked = time.time()
                for item in chunk:
                    if isinstance(item, AlertRecord) and item.status == AlertStatus.FIRING:
                        sent_at[uid_of[(item.fingerprint, item.starts_at)]] = acked
            published_s = time.monotonic() - started
            deadline = started + timeout_s
            while any(watcher.pending.values()):
                worker.check_alive()
                now = time.monotonic()
                if now > deadline or now - watcher.last_progress > idle_s:
                    break
                await asyncio.sleep(0.2)  # polling the watcher's state, with a deadline and an idle limit
            cpu_s = _cpu_s(worker.proc.pid) - cpu_before
        finally:
            if watching is not None:
                watching.cancel()
                await asyncio.gather(watching, return_exceptions=True)
            await publisher.stop()
            worker.stop()
    storm_seen = [uid for uid in sent_at if uid in watcher.seen_at]
    latencies = sorted(watcher.seen_at[uid] - sent_at[uid] for uid in storm_seen)
    last = max((watcher.seen_at[uid] for uid in storm_seen), default=started_wall)
    missing = sum(len(w) for w in watcher.pending.values())
    return {
        "pace_s": pace_s,
        "storm_alerts": firing,
        "storm_events": len(live),
        "warmup_events": len(warm),
        "publish_s": published_s,
        "drain_s": last - started_wall,
        "alerts_per_s": firing / (last - started_wall) if last > started_wall else 0.0,
        "worker_cpu_s": cpu_s,
        "alerts_per_worker_cpu_s": firing / cpu_s if cpu_s else 0.0,
        "latency_p50_s": _quantile(latencies, 0.5),
        "latency_p99_s": _quantile(latencies, 0.99),
        "latency_max_s": latencies[-1] if latencies else None,
        "expected_seen": len(storm_seen),
        "expected_missing": missing,
        "records_read": watcher.records - warm_records,
        "watcher_lag_p50_s": _quantile(sorted(watcher.lags), 0.5),
        "homes": {uid: watcher.final(watcher.first_in[uid]) for uid in storm_seen},
        "latencies": latencies,
    }


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, int(q * len(values)))]
