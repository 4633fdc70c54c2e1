"""The msgpack envelope every topic value is wrapped in: schema name, version, body."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgpack

__all__ = ["SchemaError", "decode_envelope", "encode_envelope", "encode_envelope_with_rows"]


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


def encode_envelope_with_rows(
    schema: str, version: int, rows_field: str, rows: Sequence[bytes], body: Mapping[str, Any]
) -> bytes:
    """:func:`encode_envelope` for a body whose ``rows_field`` is an array of values packed beforehand.

    The bytes are exactly those of ``encode_envelope(schema, version, {rows_field: [...], **body})``
    with each row unpacked, so decoders see no difference; a producer that keeps
    each row packed (a series table row, sent again with every batch) skips packing it again.
    """
    packer = msgpack.Packer(use_bin_type=True)
    pack = packer.pack
    parts = [
        packer.pack_map_header(3),
        pack("schema"),
        pack(schema),
        pack("v"),
        pack(version),
        pack("body"),
        packer.pack_map_header(len(body) + 1),
        pack(rows_field),
        packer.pack_array_header(len(rows)),
        *rows,
    ]
    for key, value in body.items():
        parts.append(pack(key))
        parts.append(pack(value))
    return b"".join(parts)
