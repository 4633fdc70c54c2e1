"""Agent: alerts, anomalies, predictions, changes and feedback onto ``correlation.events``, one ordered log.

Correlation needs every input in one order: an incident is a function of all of them, and a
restarted worker must read them again in the order it first did. The inputs have their own
partitions (anomalies four), so they are forwarded, unchanged, onto one single-partition topic
that the incident builder reads, as batches (``CorrelationBatch``: what one take from a topic
gave, in order). Forwarding is at-least-once: a batch's offsets are committed
only after the broker acknowledged its copy (a failed send is tried again until it is), and the
builder's result does not change when a record comes twice (members and changes are keyed by
their ids).
"""

from __future__ import annotations

import faust
from aiops_common.agent_loop import AgentMeter, WriteRetry, install_batch_agent, write_with_retry
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
    # Until the broker has it: a batch not forwarded is never given up (its offsets wait), and the log says why.
    retry = WriteRetry(until_stored=True, message="forward to correlation.events failed, retrying", level="error")

    async def handle(values: list[bytes]) -> int:
        # One message per batch (what one take gave, in order): the broker and the builder cost about the same
        # per message. Sent at once, not at the next commit as a message attached to its source offset would be.
        async def send() -> None:
            await (await events.send(key=KEY, value=CorrelationBatch(values).encode(), force=True))

        await write_with_retry(meter, send, len(values), retry)
        return 1

    # The batch's messages are acknowledged by hand once handle returned: Faust's plain take acknowledges them
    # when the loop is closed too, after a send that raised or a stop mid-retry.
    install_batch_agent(app, source, name, _as_is, handle, _BATCH, _WITHIN_S)


def _as_is(value: bytes) -> bytes:
    return value
