"""The one exception every malformed input raises, and the collector that names the offenders."""

from __future__ import annotations

__all__ = ["InvalidPayloadError", "Refused", "Rejections"]

# How much of one offending item (a series key, a log record) a message quotes.
_ITEM_CHARS = 160


class InvalidPayloadError(ValueError):
    """The request cannot be ingested; ``status_code`` is the HTTP status to answer with.

    400: malformed or invalid content (not retried by Prometheus or OTLP exporters).
    413: too large (body, decompressed body, or series per request).
    415: unsupported content type or encoding.
    """

    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


class Refused(Exception):
    """One item of a request (a data point, a series, a record) cannot be stored; collected into Rejections."""


class Rejections:
    """Problems found in one request; the request is refused as a whole if there is any.

    Scanning goes on after the first problem so that one error message names the
    first few offending items and counts all of them: a sender fixing its data sees
    the extent of the problem from a single response.
    """

    __slots__ = ("_count", "_first", "_shown", "_what")

    def __init__(self, what: str, shown: int = 5) -> None:
        self._what = what
        self._shown = shown
        self._first: list[str] = []
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, item: str, reason: str) -> None:
        self._count += 1
        if len(self._first) < self._shown:
            if len(item) > _ITEM_CHARS:
                item = item[: _ITEM_CHARS - 3] + "..."
            self._first.append(f"{item}: {reason}")

    def raise_if_any(self, total: int) -> None:
        """Raise one 400 naming the first offenders, out of ``total`` items in the request."""
        if not self._count:
            return
        more = self._count - len(self._first)
        tail = f"; and {more} more" if more else ""
        raise InvalidPayloadError(
            f"request refused, {self._count} of {total} {self._what} invalid: " + "; ".join(self._first) + tail
        )
