"""The platform's own logs: structlog, JSON lines by default."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

import structlog

__all__ = ["LogRateLimit", "configure_logging"]


def configure_logging(level: str = "INFO", fmt: str = "auto") -> None:
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=shared,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


class LogRateLimit:
    """At most one log line per key every ``interval_s``, for events that can come by the thousand (bad input, drops).

    ``limit(key)`` is None when the line is to be held back, else how many were held
    back since the last one written, which the line should carry so nothing goes unseen.
    :meth:`note` counts events that come ``n`` at a time (samples in a batch).
    """

    def __init__(self, interval_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self.clock = clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def __call__(self, key: str) -> int | None:
        noted = self.note(key)
        return None if noted is None else noted[0] - 1

    def note(self, key: str, n: int = 1) -> tuple[int, float | None] | None:
        """Count ``n`` events: None to hold the line back, else (events since the last line, seconds since it).

        The events include these ``n``; the seconds are None for a key's first line.
        """
        now = self.clock()
        last = self._last.get(key)
        held = self._held.pop(key, 0) + n
        if last is not None and now - last < self.interval_s:
            self._held[key] = held
            return None
        self._last[key] = now
        return held, None if last is None else now - last
