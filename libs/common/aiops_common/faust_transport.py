"""Faust's Kafka transport, with the workers' fetch wait taken from the settings instead of fixed at 1.5 s."""

from __future__ import annotations

from typing import cast

import aiokafka
from faust.transport.drivers import aiokafka as driver

__all__ = ["Transport"]


class _ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: driver.Transport) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # Read once, by the fetcher the consumer builds when it starts (aiokafka is pinned in pyproject.toml).
        consumer._fetch_max_wait_ms = cast(Transport, transport).fetch_max_wait_ms
        return consumer


class _Consumer(driver.Consumer):
    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(driver.Transport):
    """The aiokafka transport whose worker consumers wait ``fetch_max_wait_ms`` at most per fetch."""

    Consumer = _Consumer
    fetch_max_wait_ms: int = 1500
