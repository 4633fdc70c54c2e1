"""Which body formats a receiver accepts, from the request's Content-Type."""

from __future__ import annotations

from typing import Literal

from aiops_ingestion.normalize._errors import InvalidPayloadError

__all__ = ["JSON_MEDIA_TYPE", "media_type", "otlp_format"]

_PROTOBUF_TYPES = frozenset({"application/x-protobuf", "application/protobuf"})
JSON_MEDIA_TYPE = "application/json"


def media_type(content_type: str | None) -> str:
    """``application/json`` from ``Application/JSON; charset=utf-8``."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def otlp_format(content_type: str | None, what: str) -> Literal["protobuf", "json"]:
    """OTLP/HTTP carries binary protobuf or OTLP/JSON; anything else is a 415."""
    media = media_type(content_type)
    if media in _PROTOBUF_TYPES:
        return "protobuf"
    if media == JSON_MEDIA_TYPE:
        return "json"
    raise InvalidPayloadError(
        f"unsupported Content-Type {media or '(none)'!r} for {what}: send application/x-protobuf or application/json",
        415,
    )
