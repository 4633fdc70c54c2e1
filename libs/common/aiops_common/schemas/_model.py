"""Base for low-volume records: one typed, versioned pydantic model per message."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from aiops_common.schemas._codec import SchemaError, decode_envelope, encode_envelope

__all__ = ["VersionedRecord"]


class VersionedRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_name: ClassVar[str]
    schema_version: ClassVar[int] = 1

    def encode(self) -> bytes:
        return encode_envelope(self.schema_name, self.schema_version, self.model_dump(mode="json"))

    @classmethod
    def from_document(cls, body: Mapping[str, Any]) -> Self:
        """The record a document store body holds: fields others add to the document (an incident's ``rca``,
        counts, the ``services`` index of an anomaly) are left out, since the record forbids unknown fields."""
        return cls.model_validate({k: v for k, v in body.items() if k in cls.model_fields})

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """The record a topic value holds.

        Fields this version does not know are left out, at any depth: a newer writer may add fields within a
        schema version (a field added always has a default), and during a rolling upgrade an older reader still
        running must read its records rather than drop them. Built in code, a record still refuses unknown fields.
        A missing or wrong-typed field is a :class:`SchemaError`.
        """
        _, body = decode_envelope(data, cls.schema_name, (cls.schema_version,))
        try:
            return cls.model_validate(body)
        except ValidationError as exc:
            unknown = [error["loc"] for error in exc.errors() if error["type"] == "extra_forbidden"]
            if not unknown or len(unknown) != exc.error_count():
                raise SchemaError(f"malformed {cls.schema_name}: {exc}") from exc
        try:
            return cls.model_validate(_without(body, unknown))
        except ValidationError as exc:
            raise SchemaError(f"malformed {cls.schema_name}: {exc}") from exc


def _without(body: Any, paths: list[tuple[int | str, ...]]) -> Any:
    """A copy of ``body`` without the values at ``paths`` (pydantic error locations: keys and list indexes)."""
    if not paths:
        return body
    if isinstance(body, Mapping):
        here = {path[0] for path in paths if len(path) == 1}
        return {
            key: _without(value, [path[1:] for path in paths if len(path) > 1 and path[0] == key])
            for key, value in body.items()
            if key not in here
        }
    if isinstance(body, list):
        return [
            _without(value, [path[1:] for path in paths if len(path) > 1 and path[0] == index])
            for index, value in enumerate(body)
        ]
    return body
