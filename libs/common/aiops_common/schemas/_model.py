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
        _, body = decode_envelope(data, cls.schema_name, (cls.schema_version,))
        try:
            return cls.model_validate(body)
        except ValidationError as exc:
            raise SchemaError(f"malformed {cls.schema_name}: {exc}") from exc
