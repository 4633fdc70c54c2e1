"""OTLP trace and span ids (raw bytes) as the lowercase hex the schemas carry."""

from __future__ import annotations

from aiops_ingestion.normalize._errors import Refused

__all__ = ["SPAN_ID_BYTES", "TRACE_ID_BYTES", "hex_id"]

TRACE_ID_BYTES = 16
SPAN_ID_BYTES = 8


def hex_id(raw: bytes, size: int, field: str, *, required: bool) -> str:
    """``raw`` as hex; empty (or all zero, the spec's "invalid id") gives ``''`` unless ``required``."""
    if raw and len(raw) != size:
        raise Refused(f"{field} has {len(raw)} bytes, not {size}")
    if not raw or not any(raw):
        if required:
            raise Refused(f"{field} is missing or all zero")
        return ""
    return raw.hex()
