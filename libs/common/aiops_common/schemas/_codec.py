"""The msgpack envelope every topic value is wrapped in: schema name, version, body."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msgpack

__all__ = ["SchemaError", "decode_envelope", "encode_envelope", "encode_envelope_with_rows", "envelope_schema"]


class SchemaError(ValueError):
    """A value on a topic is not the schema (or a version of it) that was expected."""


def encode_envelope(schema: str, version: int, body: dict[str, Any]) -> bytes:
    packed: bytes = msgpack.packb({"schema": schema, "v": version, "body": body}, use_bin_type=True)
    return packed


_UNPACK_ERRORS = (ValueError, TypeError, msgpack.OutOfData, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError)


def envelope_schema(data: bytes) -> str:
    """The schema name of an envelope, for a topic that carries several schemas."""
    try:
        envelope = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except _UNPACK_ERRORS as exc:
        raise SchemaError(f"not a msgpack envelope: {exc}") from exc
    if not isinstance(envelope, dict) or not isinstance(envelope.get("schema"), str):
        raise SchemaError("value has no schema envelope")
    return str(envelope["schema"])


def decode_envelope(
    data: bytes,
    schema: str,
    supported: tuple[int, ...],
    rows_field: str | None = None,
    rows: Callable[[bytes], Any] | None = None,
) -> tuple[int, dict[str, Any]]:
    """Return ``(version, body)`` after checking the schema name and version.

    With ``rows_field`` and ``rows``, each element of the body's ``rows_field`` array is
    not unpacked but passed as its packed bytes to ``rows``, whose results make the list
    (the other side of :func:`encode_envelope_with_rows`: a consumer can cache rows by
    their bytes). ``rows`` raises :class:`SchemaError` for a row it cannot read.
    """
    try:
        if rows_field is None or rows is None:
            envelope = msgpack.unpackb(data, raw=False, strict_map_key=False)
        else:
            envelope = _unpack_with_rows(data, rows_field, rows)
    except SchemaError:
        raise
    except _UNPACK_ERRORS as exc:
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


def _unpack_with_rows(data: bytes, rows_field: str, rows: Callable[[bytes], Any]) -> Any:
    """``msgpack.unpackb(data)`` of an envelope, except that ``body[rows_field]``'s elements go through ``rows``."""
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=max(len(data), 1))
    unpacker.feed(data)
    try:
        size = unpacker.read_map_header()
    except (ValueError, msgpack.OutOfData):
        return msgpack.unpackb(data, raw=False, strict_map_key=False)  # not a map: let the caller say so
    envelope: dict[Any, Any] = {}
    for _ in range(size):
        key = unpacker.unpack()
        if key != "body":
            envelope[key] = unpacker.unpack()
            continue
        body: dict[Any, Any] = {}
        for _ in range(unpacker.read_map_header()):
            field = unpacker.unpack()
            if field != rows_field:
                body[field] = unpacker.unpack()
                continue
            values = []
            for _ in range(unpacker.read_array_header()):
                start = unpacker.tell()
                unpacker.skip()
                values.append(rows(data[start : unpacker.tell()]))
            body[field] = values
        envelope[key] = body
    if unpacker.tell() != len(data):
        raise msgpack.ExtraData(envelope, data[unpacker.tell() :])
    return envelope


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
