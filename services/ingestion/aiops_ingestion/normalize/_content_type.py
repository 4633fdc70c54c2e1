"""Which body formats a receiver accepts, from the request's Content-Type (and, for remote write, its encoding)."""

from __future__ import annotations

from typing import Literal

from aiops_ingestion.normalize._errors import InvalidPayloadError

__all__ = [
    "JSON_MEDIA_TYPE",
    "REMOTE_WRITE_V1_PROTO",
    "REMOTE_WRITE_V2_PROTO",
    "media_type",
    "media_type_parameters",
    "otlp_format",
    "remote_write_version",
]

_PROTOBUF_TYPES = frozenset({"application/x-protobuf", "application/protobuf"})
JSON_MEDIA_TYPE = "application/json"
_REMOTE_WRITE_MEDIA = "application/x-protobuf"
REMOTE_WRITE_V1_PROTO = "prometheus.WriteRequest"
REMOTE_WRITE_V2_PROTO = "io.prometheus.write.v2.Request"
_REMOTE_WRITE_PROTOS: dict[str, Literal["1.0", "2.0"]] = {REMOTE_WRITE_V1_PROTO: "1.0", REMOTE_WRITE_V2_PROTO: "2.0"}


def media_type(content_type: str | None) -> str:
    """``application/json`` from ``Application/JSON; charset=utf-8``."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def media_type_parameters(content_type: str | None) -> dict[str, str]:
    """The parameters of a media type (RFC 9110): names lower-cased, values as sent, quotes removed.

    >>> media_type_parameters('application/x-protobuf; Proto="io.prometheus.write.v2.Request"')
    {'proto': 'io.prometheus.write.v2.Request'}
    """
    parameters: dict[str, str] = {}
    for part in (content_type or "").split(";")[1:]:
        name, sep, value = part.partition("=")
        if sep:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
            parameters[name.strip().lower()] = value
    return parameters


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


def remote_write_version(content_type: str | None, content_encoding: str | None) -> Literal["1.0", "2.0"]:
    """The remote write protocol a request speaks, from its headers, as the 2.0 specification negotiates it.

    ``application/x-protobuf`` without ``proto=``, or with ``proto=prometheus.WriteRequest``,
    is 1.0; ``proto=io.prometheus.write.v2.Request`` is 2.0. Any other media type or
    ``proto=`` value, and any Content-Encoding but snappy, is a 415: a 2.0 sender
    then falls back to another message (Prometheus retries with 1.0). A request with
    no Content-Type or no Content-Encoding is taken as 1.0 with snappy, as early
    senders sent it. ``X-Prometheus-Remote-Write-Version`` is not consulted: the
    specification makes the Content-Type the one that names the message.
    """
    media = media_type(content_type)
    if media not in ("", _REMOTE_WRITE_MEDIA):
        raise InvalidPayloadError(
            f"remote write needs Content-Type {_REMOTE_WRITE_MEDIA} (optionally with proto={REMOTE_WRITE_V1_PROTO} "
            f"or proto={REMOTE_WRITE_V2_PROTO}), got {media!r}",
            415,
        )
    encoding = (content_encoding or "snappy").strip().lower()
    if encoding != "snappy":
        raise InvalidPayloadError(f"remote write needs Content-Encoding snappy, got {encoding!r}", 415)
    proto = media_type_parameters(content_type).get("proto")
    if proto is None:
        return "1.0"
    version = _REMOTE_WRITE_PROTOS.get(proto)
    if version is None:
        raise InvalidPayloadError(
            f"unsupported remote write message proto={proto!r}: this receiver reads "
            f"proto={REMOTE_WRITE_V1_PROTO} (1.0) and proto={REMOTE_WRITE_V2_PROTO} (2.0)",
            415,
        )
    return version
