"""Agent: deployments and other changes (``changes``) into the topology store, attached to their service."""

from __future__ import annotations

import faust
from aiops_common.agent_loop import install_store_agent
from aiops_common.schemas import ChangeEvent
from aiops_common.topics import Topics, declare
from aiops_common.topology import AttributeValue, Change, TopologyStore

from aiops_correlation.settings import CorrelationSettings

__all__ = ["as_change", "install"]

BATCH = 500
WITHIN_S = 0.2
"""Changes come a few an hour; a short wait keeps one just published quick to reach the store."""


def as_change(event: ChangeEvent) -> Change:
    """The store's change for an event: its id (a second delivery replaces the first), service, time and kind;
    version, previous version, environment and author as attributes beside the event's labels.

    >>> from datetime import datetime, UTC
    >>> event = ChangeEvent(id="d-1", service="payment", version="v2.4.1", at=datetime(2026, 3, 1, tzinfo=UTC),
    ...                     labels={"team": "pay", "version": "ignored"})
    >>> change = as_change(event)
    >>> (change.id, change.service, change.kind, dict(change.attributes))
    ('d-1', 'payment', 'deployment', {'team': 'pay', 'version': 'v2.4.1'})
    """
    attributes: dict[str, AttributeValue] = dict(event.labels)
    named = {
        "version": event.version,
        "previous_version": event.previous_version,
        "environment": event.environment,
        "author": event.author,
    }
    # The event's own fields say what they mean; a label of the same name does not override them.
    attributes.update({key: value for key, value in named.items() if value})
    return Change(event.id, event.service, event.at, event.kind, event.description, attributes)


def install(app: faust.App, settings: CorrelationSettings, store: TopologyStore) -> None:
    topic = declare(app, Topics.CHANGES, settings.topic_prefix)

    async def record(events: list[ChangeEvent]) -> None:
        # Keyed by id in the store: a redelivered event replaces itself.
        await store.add_changes(as_change(event) for event in events)

    install_store_agent(app, topic, "change_recorder", ChangeEvent.decode, record, BATCH, WITHIN_S)
