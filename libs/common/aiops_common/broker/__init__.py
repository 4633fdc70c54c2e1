"""Talking to the Kafka-protocol broker: embedded Tansu, topic creation, acknowledged publishing."""

from __future__ import annotations

from aiops_common.broker.addresses import bootstrap_servers, free_port
from aiops_common.broker.admin import ensure_topics
from aiops_common.broker.embedded import BrokerStartError, EmbeddedBroker
from aiops_common.broker.publisher import BrokerUnavailableError, Publisher

__all__ = [
    "BrokerStartError",
    "BrokerUnavailableError",
    "EmbeddedBroker",
    "Publisher",
    "bootstrap_servers",
    "ensure_topics",
    "free_port",
]
