"""Base for low-volume records: one typed, versioned pydantic model per message."""

from __future__ import annotations

from typing import ClassVar, Self

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
    def decode(cls, data: bytes) -> Self:
        _, body = decode_envelope(data, cls.schema_name, (cls.schema_version,))
        try:
            return cls.model_validate(body)
        except ValidationError as exc:
            raise SchemaError(f"malformed {cls.schema_name}: {exc}") from exc
