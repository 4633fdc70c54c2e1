"""The msgpack envelope every topic value is wrapped in: schema name, version, body."""

from __future__ import annotations

from typing import Any

import msgpack

__all__ = ["SchemaError", "decode_envelope", "encode_envelope"]


class SchemaError(ValueError):
    """A value on a topic is not the schema (or a version of it) that was expected."""


def encode_envelope(schema: str, version: int, body: dict[str, Any]) -> bytes:
    packed: bytes = msgpack.packb({"schema": schema, "v": version, "body": body}, use_bin_type=True)
    return packed


def decode_envelope(data: bytes, schema: str, supported: tuple[int, ...]) -> tuple[int, dict[str, Any]]:
    """Return ``(version, body)`` after checking the schema name and version."""
    try:
        envelope = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise SchemaError(f"not a msgpack envelope: {exc}") from exc
    if not isinstance(envelope, dict) or "schema" not in envelope:
        raise SchemaError("value has no schema envelope")
    if envelope["schema"] != schema:
        raise SchemaError(f"expected schema {schema!r}, got {envelope['schema']!r}")
    version = envelope.get("v")
    if version not in supported:
        raise SchemaError(f"schema {schema!r} version {version!r} not supported (supported: {supported})")
    body = envelope.get("body")
    if not isinstance(body, dict):
        raise SchemaError(f"schema {schema!r} body is not a map")
    return version, body
