"""Every refusal the API gives: one JSON body, ``{"error": ..., "request_id": ...}``, with the right status."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

__all__ = ["ERROR_RESPONSES", "ApiError", "ErrorBody"]


class ErrorBody(BaseModel):
    error: str = Field(description="What was wrong, for people.")
    request_id: str = Field(default="", description="The request's id, also in the X-Request-ID header and the logs.")


class ApiError(Exception):
    """Raised by a route: answered as ``status`` with an :class:`ErrorBody`."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def _described(*codes: int) -> dict[int | str, dict[str, Any]]:
    texts = {
        400: "Bad input",
        401: "No credentials, or credentials that are not valid",
        403: "The caller's role may not do this",
        404: "No such thing",
        409: "Conflicts with the stored state (read it again)",
        413: "Body too large",
        422: "The request does not match the schema",
        429: "Rate limit reached; retry after Retry-After seconds",
        501: "Not available yet",
        503: "A store or the broker is unavailable; retry later",
    }
    return {code: {"model": ErrorBody, "description": texts[code]} for code in codes}


#: The refusals every API route may answer with, for the OpenAPI document.
ERROR_RESPONSES = _described(400, 401, 403, 404, 422, 429, 503)
