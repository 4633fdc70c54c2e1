"""What the action service publishes: execution states (``actions``), incident commands (to correlation, which
owns incidents) and execution outcomes (``feedback``, which progressive automation and RCA learn from)."""

from __future__ import annotations

from datetime import datetime

from aiops_common.broker.publisher import Message, Publisher
from aiops_common.schemas import (
    ExecutionRecord,
    FeedbackLabel,
    FeedbackRecord,
    IncidentCommand,
    IncidentStatus,
)
from aiops_common.topics import CORRELATION_EVENTS_KEY, Topics

__all__ = ["ACTOR", "Outputs"]

ACTOR = "action"
"""Who the action service's own writes are by (requests it proposes, commands, feedback)."""


class Outputs:
    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher

    async def execution(self, record: ExecutionRecord) -> None:
        await self.publisher.publish([Message(Topics.ACTIONS, record.encode(), key=record.id.encode())])

    async def mitigate(self, record: ExecutionRecord, at: datetime, note: str) -> None:
        command = IncidentCommand(
            incident_id=record.incident_id, status=IncidentStatus.MITIGATED, by=ACTOR, at=at, note=note
        )
        await self.publisher.publish([Message(Topics.CORRELATION_EVENTS, command.encode(), key=CORRELATION_EVENTS_KEY)])

    async def outcome(self, record: ExecutionRecord, at: datetime, note: str) -> None:
        label = FeedbackLabel.REMEDIATED if record.status.value == "succeeded" else FeedbackLabel.NOT_REMEDIATED
        feedback = FeedbackRecord(
            subject_id=record.id,
            subject_kind="execution",
            label=label,
            by=ACTOR,
            at=at,
            note=note[:2000],
            related_id=record.runbook_id,
        )
        await self.publisher.publish([Message(Topics.FEEDBACK, feedback.encode(), key=record.id.encode())])
