"""JSON bodies of the platform's own APIs, validated into pydantic models with readable errors."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

from aiops_ingestion.normalize._content_type import JSON_MEDIA_TYPE, media_type
from aiops_ingestion.normalize._errors import InvalidPayloadError

__all__ = ["parse_json_body"]

M = TypeVar("M", bound=BaseModel)

# How many field problems one error message lists.
_SHOWN = 5


def parse_json_body(model: type[M], body: bytes, content_type: str | None, what: str) -> M:
    """``body`` validated as ``model``; 415 for a Content-Type other than JSON in UTF-8, else 400.

    A request without a Content-Type is read as JSON, so that ``curl --data-binary``
    with ``-H 'Content-Type:'`` and minimal clients work; one that names another
    type (``application/x-www-form-urlencoded``, curl's default for ``-d``) is
    refused rather than guessed. The 400 names each problem by its place:
    ``alerts[2].startsAt: Input should be a valid datetime``.
    """
    media = media_type(content_type)
    if media and media != JSON_MEDIA_TYPE:
        raise InvalidPayloadError(
            f"unsupported Content-Type {media!r} for {what}: send Content-Type: {JSON_MEDIA_TYPE}", 415
        )
    charset = _charset(content_type)
    if charset not in ("", "utf-8", "utf8"):
        raise InvalidPayloadError(f"unsupported charset {charset!r} for {what}: JSON is read as UTF-8", 415)
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise _readable(exc, what) from None


def _charset(content_type: str | None) -> str:
    """The ``charset`` parameter of a Content-Type, lowercase and unquoted; empty when absent."""
    for parameter in (content_type or "").split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"').lower()
    return ""


def _readable(exc: ValidationError, what: str) -> InvalidPayloadError:
    problems = []
    for error in exc.errors(include_url=False):
        where = ""
        for part in error["loc"]:
            where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
        problems.append(f"{where or 'body'}: {error['msg']}")
    more = len(problems) - _SHOWN
    tail = f"; and {more} more" if more > 0 else ""
    return InvalidPayloadError(f"invalid {what}: " + "; ".join(problems[:_SHOWN]) + tail)
