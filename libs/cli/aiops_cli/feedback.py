"""``aiops feedback``: label an anomaly a true or false positive, published to ``feedback``."""

from __future__ import annotations

from aiops_common.broker import Publisher
from aiops_common.broker.publisher import Message
from aiops_common.schemas import FeedbackRecord
from aiops_common.topics import Topics

__all__ = ["send_feedback"]


async def send_feedback(broker_url: str, prefix: str, record: FeedbackRecord, timeout_s: float) -> None:
    """Publish one label and wait for the broker's acknowledgement; keyed by its subject, as the topic says."""
    publisher = Publisher(broker_url, prefix, timeout_s=timeout_s)
    try:
        await publisher.publish([Message(Topics.FEEDBACK, record.encode(), key=record.subject_id.encode())])
    finally:
        await publisher.stop()
