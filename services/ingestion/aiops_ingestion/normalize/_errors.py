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
    """Problems found in one request: it is refused as a whole, or (``partial``) only when nothing is left.

    Scanning goes on after the first problem so that one error message names the
    first few offending items and counts all of them: a sender fixing its data sees
    the extent of the problem from a single response.

    With ``partial`` (OTLP, whose senders understand a partial success) the valid
    items are kept: :meth:`settle` raises only when every item is invalid, and
    :attr:`count` and :meth:`message` fill the response's ``partial_success``.
    """

    __slots__ = ("_count", "_first", "_shown", "_total", "_what", "partial")

    def __init__(self, what: str, shown: int = 5, *, partial: bool = False) -> None:
        self._what = what
        self._shown = shown
        self._first: list[str] = []
        self._count = 0
        self._total = 0
        self.partial = partial

    def __len__(self) -> int:
        return self._count

    @property
    def count(self) -> int:
        """How many items were found invalid."""
        return self._count

    def add(self, item: str, reason: str, count: int = 1) -> None:
        """``count`` items (one, or every item of a resource refused for its attributes) invalid for ``reason``."""
        self._count += count
        if len(self._first) < self._shown:
            if len(item) > _ITEM_CHARS:
                item = item[: _ITEM_CHARS - 3] + "..."
            self._first.append(f"{item}: {reason}")

    def message(self) -> str:
        """``3 of 2000 data points invalid: <first offenders>``; empty when every item was valid."""
        if not self._count:
            return ""
        more = self._count - len(self._first)
        tail = f"; and {more} more" if more > 0 else ""
        return f"{self._count} of {self._total} {self._what} invalid: " + "; ".join(self._first) + tail

    def settle(self, total: int) -> None:
        """Raise one 400 naming the first offenders out of ``total`` items, if the request is refused.

        Refused: any invalid item, or with ``partial`` only when every item is invalid.
        """
        self._total = total
        if self._count and (not self.partial or self._count >= total):
            raise InvalidPayloadError("request refused, " + self.message())

    def raise_if_any(self, total: int) -> None:
        """Refuse the request for any invalid item, whatever ``partial`` says (JSON APIs, remote write)."""
        self._total = total
        if self._count:
            raise InvalidPayloadError("request refused, " + self.message())
