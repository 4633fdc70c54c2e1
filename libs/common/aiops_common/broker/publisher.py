"""Acknowledged publishing: a send returns only once the broker has the message."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from aiops_common.broker.addresses import bootstrap_servers
from aiops_common.topics import TopicSpec

__all__ = ["BrokerUnavailableError", "Message", "Publisher"]

MAX_MESSAGE_BYTES = 32 * 1024 * 1024


class BrokerUnavailableError(RuntimeError):
    """The broker did not acknowledge in time; the caller should ask its client to retry."""


@dataclass(frozen=True, slots=True)
class Message:
    topic: TopicSpec
    value: bytes
    key: bytes | None = None
    partition: int | None = None


class Publisher:
    """One aiokafka producer shared by a process, with ``acks=all`` by default."""

    def __init__(self, broker_url: str, prefix: str = "", acks: str = "all", timeout_s: float = 10.0) -> None:
        self.broker_url = broker_url
        self.prefix = prefix
        self.timeout_s = timeout_s
        self._acks: int | str = "all" if acks == "all" else int(acks)
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        await self._ensure_producer()

    async def _ensure_producer(self) -> AIOKafkaProducer:
        # The producer is created lazily and re-created after a failed start, so a
        # service that came up while the broker was down recovers on its own.
        if self._producer is not None:
            return self._producer
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=bootstrap_servers(self.broker_url),
                    acks=self._acks,
                    max_request_size=MAX_MESSAGE_BYTES,
                    request_timeout_ms=int(self.timeout_s * 1000),
                    linger_ms=0,
                )
                try:
                    await asyncio.wait_for(producer.start(), self.timeout_s)
                except (KafkaError, OSError, TimeoutError) as exc:
                    await producer.stop()
                    raise BrokerUnavailableError(f"broker {self.broker_url} unreachable: {exc}") from exc
                self._producer = producer
        return self._producer

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def publish(self, messages: Sequence[Message]) -> None:
        """Send all messages and wait until the broker acknowledged every one."""
        if not messages:
            return
        producer = await self._ensure_producer()
        try:
            futures = [
                await producer.send(m.topic.full_name(self.prefix), m.value, key=m.key, partition=m.partition)
                for m in messages
            ]
            await asyncio.wait_for(asyncio.gather(*futures), self.timeout_s)
        except (KafkaError, OSError, TimeoutError) as exc:
            raise BrokerUnavailableError(f"broker did not acknowledge: {type(exc).__name__}: {exc}") from exc

    async def ping(self, timeout_s: float = 2.0) -> bool:
        """True when the broker answers a metadata request now."""
        try:
            producer = await self._ensure_producer()
            await asyncio.wait_for(producer.client.fetch_all_metadata(), timeout_s)
        except (KafkaError, OSError, TimeoutError, BrokerUnavailableError):
            return False
        return True
