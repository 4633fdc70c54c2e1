"""The running platform's address book (``<data_dir>/state.json``): written by ``aiops up``, read by every command."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from aiops_common.settings import CommonSettings

if TYPE_CHECKING:
    from aiops_common.broker.publisher import Message

__all__ = ["PlatformNotRunningError", "RunState", "publish_to_platform", "running_broker"]


@dataclass(frozen=True, slots=True)
class RunState:
    broker_url: str
    embedded_broker: bool
    topic_prefix: str
    services: list[str]
    http_url: str | None
    grpc_address: str | None
    pid: int
    probe_url: str | None = None  # the worker's /health, /ready and /metrics (every service of this process)
    gateway_url: str | None = None  # the REST API and the operator UI

    @staticmethod
    def path(data_dir: Path) -> Path:
        return Path(data_dir) / "state.json"

    def write(self, data_dir: Path) -> None:
        path = self.path(data_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(path)

    @classmethod
    def read(cls, data_dir: Path) -> RunState | None:
        """The state of a platform still running from ``data_dir``, else None."""
        path = cls.path(data_dir)
        try:
            state = cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None
        try:
            os.kill(state.pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return state

    @classmethod
    def clear(cls, data_dir: Path) -> None:
        cls.path(data_dir).unlink(missing_ok=True)


class PlatformNotRunningError(RuntimeError):
    """No broker to talk to: no ``aiops up`` runs from the data folder and ``AIOPS_BROKER_URL`` is not set."""


def running_broker(settings: CommonSettings) -> tuple[str, str] | None:
    """The broker a command talks to and its topic prefix: ``AIOPS_BROKER_URL``, else the one ``aiops up`` runs."""
    if settings.broker_url:
        return settings.broker_url, settings.topic_prefix
    state = RunState.read(settings.data_dir)
    return None if state is None else (state.broker_url, state.topic_prefix)


async def publish_to_platform(settings: CommonSettings, messages: Sequence[Message]) -> None:
    """Publish a command's records to the running platform (:func:`running_broker`), acknowledged.

    Raises :class:`PlatformNotRunningError`, with a message for people, when there is no platform to publish to.
    """
    from aiops_common.broker.publisher import Publisher  # the client is imported only by a command that publishes

    broker = running_broker(settings)
    if broker is None:
        raise PlatformNotRunningError(
            f"no platform is running from {settings.data_dir} and AIOPS_BROKER_URL is not set (run `aiops up`)"
        )
    publisher = Publisher(broker[0], broker[1], timeout_s=settings.publish_timeout_s)
    try:
        await publisher.publish(list(messages))
    finally:
        await publisher.stop()
