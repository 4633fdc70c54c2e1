"""Agent: alerts, anomalies, predictions, changes and feedback onto ``correlation.events``, one ordered log.

Correlation needs every input in one order: an incident is a function of all of them, and a
restarted worker must read them again in the order it first did. The inputs have their own
partitions (anomalies four), so they are forwarded, unchanged, onto one single-partition topic
that the incident builder reads, as batches (``CorrelationBatch``: what one take from a topic
gave, in order). Forwarding is at-least-once: a batch's offsets are committed
only after the broker acknowledged every copy, and the builder's result does not change when a
record comes twice (members and changes are keyed by their ids).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import faust
from aiops_common.agent_loop import AgentMeter
from aiops_common.schemas import CorrelationBatch
from aiops_common.topics import CORRELATION_EVENTS_KEY, Topics, TopicSpec, declare

from aiops_correlation.settings import CorrelationSettings

__all__ = ["INPUTS", "KEY", "install"]

INPUTS: tuple[TopicSpec, ...] = (
    Topics.ALERTS_RAW,
    Topics.ANOMALIES,
    Topics.PREDICTIONS,
    Topics.CHANGES,
    Topics.FEEDBACK,
)
KEY = CORRELATION_EVENTS_KEY
"""Every record of ``correlation.events`` has this key: one partition, one order."""

_BATCH = 500
_WITHIN_S = 0.02


def install(app: faust.App, settings: CorrelationSettings) -> faust.TopicT:
    """Add one forwarding agent per input topic; returns ``correlation.events``."""
    events = declare(app, Topics.CORRELATION_EVENTS, settings.topic_prefix)
    for spec in INPUTS:
        _forward(
            app, declare(app, spec, settings.topic_prefix), events, f"correlation_in_{spec.name.replace('.', '_')}"
        )
    return events


def _forward(app: faust.App, source: faust.TopicT, events: faust.TopicT, name: str) -> None:
    meter = AgentMeter(name)

    @app.agent(source, name=name)
    async def forward(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        # A batch at a time: sent at once (not at the next commit, as a message attached to its source
        # offset would be), and the batch's offsets move on once the broker has every copy.
        async for batch in stream.take(_BATCH, within=_WITHIN_S):
            meter.took(len(batch))
            with meter.timed():
                # One message per batch: the broker and the builder cost about the same per message.
                sent = await events.send(key=KEY, value=CorrelationBatch(list(batch)).encode(), force=True)
                await sent
            meter.sent()
            yield None
