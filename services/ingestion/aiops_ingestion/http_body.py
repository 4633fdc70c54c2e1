"""Read a request body within the size limits and undo its Content-Encoding."""

from __future__ import annotations

import zlib

from starlette.requests import Request

from aiops_ingestion.normalize import InvalidPayloadError

__all__ = ["decode_content_encoding", "read_body"]


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The raw body, refused with 413 as soon as it exceeds ``max_bytes`` (before reading it all)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            raise InvalidPayloadError(f"invalid Content-Length header {declared!r}") from None
        if length > max_bytes:
            raise InvalidPayloadError(f"body of {length} bytes exceeds the limit of {max_bytes} bytes", 413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise InvalidPayloadError(f"body exceeds the limit of {max_bytes} bytes", 413)
        chunks.append(chunk)
    return b"".join(chunks)


def decode_content_encoding(body: bytes, encoding: str | None, max_bytes: int) -> bytes:
    """Decompress gzip/deflate bodies, refusing anything that inflates beyond ``max_bytes``."""
    enc = (encoding or "identity").strip().lower()
    if enc in ("", "identity"):
        return body
    if enc not in ("gzip", "x-gzip", "deflate"):
        raise InvalidPayloadError(f"unsupported Content-Encoding {encoding!r} (use gzip or none)", 415)
    wbits = 16 + zlib.MAX_WBITS if enc != "deflate" else zlib.MAX_WBITS
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise InvalidPayloadError(f"body is not valid {enc}: {exc}") from None
    if len(out) > max_bytes or inflater.unconsumed_tail:
        raise InvalidPayloadError(f"decompressed body exceeds the limit of {max_bytes} bytes", 413)
    if not inflater.eof:
        raise InvalidPayloadError(f"body is truncated {enc} data")
    return out
