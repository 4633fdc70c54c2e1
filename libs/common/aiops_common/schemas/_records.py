"""Shared machinery for batches of row records (logs, spans) on one topic."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any, ClassVar, Generic, Self, TypeVar

from aiops_common.schemas._codec import SchemaError, decode_envelope, encode_envelope

__all__ = ["RowBatch"]

R = TypeVar("R")


class RowBatch(Generic[R]):
    """A batch of dataclass rows, all about services hashed to one partition."""

    schema: ClassVar[str]
    version: ClassVar[int] = 1
    row_type: ClassVar[type[Any]]

    def __init__(self, rows: Iterable[R]) -> None:
        self.rows: list[R] = list(rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.rows == other.rows

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self.rows)} rows)"

    def encode(self) -> bytes:
        names = [f.name for f in dataclasses.fields(self.row_type)]
        rows = [[getattr(r, n) for n in names] for r in self.rows]
        return encode_envelope(self.schema, self.version, {"fields": names, "rows": rows})

    @classmethod
    def decode(cls, data: bytes) -> Self:
        _, body = decode_envelope(data, cls.schema, (cls.version,))
        try:
            names = body["fields"]
            return cls(cls.row_type(**dict(zip(names, row, strict=True))) for row in body["rows"])
        except (KeyError, TypeError, ValueError) as exc:
            raise SchemaError(f"malformed {cls.schema}: {exc}") from exc
