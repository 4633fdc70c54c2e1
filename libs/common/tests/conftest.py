"""Fixtures for the common library's tests: a replaying stage that records what it takes."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import faust
import pytest
from aiops_common.partition_replay import ReplayingStage
from aiops_common.testing.eventually import scaled

Taken = list[tuple[int, bytes | None]]
"""(offset, value) of every message a partition's state took, in the order it took them."""


class RecordingStage(ReplayingStage[Taken]):
    """A stage whose state per partition is the list of messages it took; ``checkpoints`` says where each resumes."""

    table_suffix = "state"
    table_help = "what the recorder took"

    def __init__(self, app: faust.App, topic: str, checkpoints: Mapping[int, int]) -> None:
        source = app.topic(topic, value_type=bytes, value_serializer="raw")
        super().__init__(app, "recorder", source, 2, replay_timeout_s=scaled(5.0))
        self.checkpoints = dict(checkpoints)
        self.restores: list[tuple[int, int | None]] = []
        self.deliveries = 0

    def create(self, partition: int) -> Taken:
        return []

    async def restore(self, partition: int, state: Taken, delivered: int | None) -> int:
        self.restores.append((partition, delivered))
        needed = self.checkpoints.get(partition, delivered)
        assert needed is not None
        return needed

    async def take(self, partition: int, state: Taken, value: bytes | None, offset: int) -> None:
        state.append((offset, value))

    async def after_delivery(self, partition: int, state: Taken) -> None:
        self.deliveries += 1


@pytest.fixture
def recording_stage() -> Callable[..., RecordingStage]:
    """``recording_stage(topic, broker_url=..., checkpoints={partition: first offset needed})``; not started."""

    def make(
        topic: str, broker_url: str = "kafka://127.0.0.1:9", checkpoints: Mapping[int, int] | None = None
    ) -> RecordingStage:
        app = faust.App(f"{topic}-app", broker=broker_url, store="memory://", autodiscover=False, web_enabled=False)
        return RecordingStage(app, topic, checkpoints or {})

    return make
