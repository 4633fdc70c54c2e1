"""Agent: error and warning counts and new log templates per service from ``logs.raw`` batches, as features."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import faust
from aiops_common.schemas import LogBatch, LogRecord, MetricKind
from aiops_common.topics import Topics, declare
from drain3 import TemplateMiner
from drain3.memory_buffer_persistence import MemoryBufferPersistence
from drain3.template_miner_config import TemplateMinerConfig

from aiops_stream.checkpoint import CheckpointedStage
from aiops_stream.event_windows import DerivedSamples, EventWindowProcessor, event_window_config
from aiops_stream.settings import StreamSettings
from aiops_stream.window_processor import series_clocks

__all__ = ["LogPatternProcessor", "install", "severity_class"]

# drain3 logs every state save at INFO.
logging.getLogger("drain3").setLevel(logging.WARNING)


def severity_class(record: LogRecord) -> str:
    """``error``, ``warning`` or ``other``, from the name or else the OTLP severity number."""
    name = record.severity.upper()
    if name in ("ERROR", "FATAL") or (name not in ("WARN", "WARNING") and record.severity_number >= 17):
        return "error"
    if name in ("WARN", "WARNING") or 13 <= record.severity_number <= 16:
        return "warning"
    return "other"


def _miner(settings: StreamSettings, state: bytes | None) -> TemplateMiner:
    config = TemplateMinerConfig()
    config.drain_sim_th = settings.stream_log_similarity
    config.drain_max_clusters = settings.stream_log_max_templates
    config.snapshot_compress_state = True
    persistence = MemoryBufferPersistence()
    persistence.state = state
    miner = TemplateMiner(persistence, config)
    # Saved explicitly at checkpoints, not on every template change.
    miner.persistence_handler = None
    return miner


class LogPatternProcessor(EventWindowProcessor):
    """The log windows and the template miner of one ``logs.raw`` partition.

    Per service and window: ``log.records``, ``log.errors`` (ERROR and FATAL), ``log.warnings``
    and ``log.new_templates`` (lines that made drain3 create a template), each a rate in
    ``value`` with the number in ``sum``. Templates are mined by one drain3
    ``TemplateMiner`` per input partition; its state is saved (in-memory persistence) into
    the partition's checkpoint whenever its templates changed, and lines the restored
    checkpoint already covers are not learned twice: whether they created a template is
    remembered by position instead.
    """

    def __init__(
        self,
        partition: int,
        settings: StreamSettings,
        features: faust.TopicT,
        read: Callable[[str], bytes | None],
    ) -> None:
        windows = series_clocks(settings, event_window_config(settings), "logs", partition)
        super().__init__(windows, features, self._derive, read)
        self.miner_version = int(self.restored.get("miner_version", 0))
        # Two slots: the checkpoint names the one it goes with, so a crash between writing a new miner
        # state and the checkpoint leaves the old pair intact.
        state = read(f":miner{self.miner_version % 2}") if self.miner_version else None
        self.miner = _miner(settings, state)
        self.miner_changed = False
        self.created: set[tuple[int, int]] = {(int(o), int(r)) for o, r in self.restored.get("created", [])}

    def _derive(self, value: bytes, offset: int, replaying: bool) -> DerivedSamples:
        out = DerivedSamples()
        for row, record in enumerate(LogBatch.decode(value).rows):
            labels = {"service": record.service}
            ts = record.ts_ns // 1_000_000
            severity = severity_class(record)
            if replaying:
                new = (offset, row) in self.created
            else:
                change = self.miner.add_log_message(record.body)["change_type"]
                new = change == "cluster_created"
                if new:
                    self.created.add((offset, row))
                self.miner_changed |= change != "none"
            out.add(out.series("log.records", labels, MetricKind.DELTA, "1/s"), ts, 1.0)
            out.add(out.series("log.errors", labels, MetricKind.DELTA, "1/s"), ts, float(severity == "error"))
            out.add(out.series("log.warnings", labels, MetricKind.DELTA, "1/s"), ts, float(severity == "warning"))
            out.add(out.series("log.new_templates", labels, MetricKind.DELTA, "1/s"), ts, float(new))
        return out

    def checkpoint(self, extra: dict[str, Any] | None = None) -> dict[str, bytes]:
        entries: dict[str, bytes] = {}
        if self.miner_changed:
            self.miner_version += 1
            buffer = MemoryBufferPersistence()
            self.miner.persistence_handler = buffer
            try:
                self.miner.save_state("checkpoint")
            finally:
                self.miner.persistence_handler = None
            entries[f":miner{self.miner_version % 2}"] = buffer.state
            self.miner_changed = False
        floor = self.replay_from
        self.created = {pos for pos in self.created if pos[0] >= floor}
        mine = {"miner_version": self.miner_version, "created": sorted(self.created)}
        entries.update(super().checkpoint({**mine, **(extra or {})}))
        return entries

    @property
    def template_count(self) -> int:
        return len(self.miner.drain.clusters)


def install(app: faust.App, settings: StreamSettings) -> CheckpointedStage:
    source = declare(app, Topics.LOGS_RAW, settings.topic_prefix)
    features = declare(app, Topics.FEATURES, settings.topic_prefix)
    return CheckpointedStage(
        app,
        "log_patterns",
        source,
        Topics.LOGS_RAW.partitions,
        lambda partition, read: LogPatternProcessor(partition, settings, features, read),
        idle_after_s=settings.idle_flush_after_s,
    )
