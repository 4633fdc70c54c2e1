"""HTTP steps: one request (method, http/https URL, headers, JSON body) with a timeout and a bounded answer."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from aiops_action.executors._protocol import Step, StepResult

__all__ = ["HttpExecutor"]

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
#: Header values an approver, a notification or the audit log must not see.
_SECRET_HEADER = re.compile(r"authorization|cookie|token|secret|password|api-?key", re.IGNORECASE)


class _InvalidRequestError(Exception):
    """A step whose request cannot be built: becomes ``ok=False``."""


class HttpExecutor:
    """Sends ``http`` steps (``action`` is the method); a 2xx answer is ``ok``, anything else is not.

    The answer's status and its first ``max_body_bytes`` go into the result (the rest is counted and dropped). The
    proxy settings of the environment are not used, and redirects are not followed: the step names the one URL it
    calls. A dry run checks and describes the request, secrets hidden, and sends nothing.
    """

    kind = "http"

    def __init__(self, *, max_body_bytes: int = 64 * 1024, verify: bool | str = True) -> None:
        self._max_body_bytes = max_body_bytes
        self._verify = verify

    async def dry_run(self, step: Step) -> StepResult:
        try:
            method, url, headers, body = _request(step)
        except _InvalidRequestError as exc:
            return StepResult(step=step.name, ok=False, dry_run=True, summary=str(exc))
        shown = _shown_url(url)
        return StepResult(
            step=step.name,
            ok=True,
            dry_run=True,
            summary=f"would send {method} {shown}" + (f" with a {len(body)}-byte JSON body" if body else ""),
            output=_describe(method, shown, headers, body),
            details={"method": method, "url": shown, "headers": _shown(headers)},
        )

    async def execute(self, step: Step) -> StepResult:
        try:
            method, url, headers, body = _request(step)
        except _InvalidRequestError as exc:
            return StepResult(step=step.name, ok=False, dry_run=False, summary=str(exc))
        shown = _shown_url(url)
        details: dict[str, Any] = {"method": method, "url": shown}
        try:
            # httpx's timeout is per operation (connect, each read): the step's budget bounds the whole exchange.
            async with asyncio.timeout(step.timeout_s):
                status, kept, total = await self._send(method, url, headers, body, step.timeout_s)
        except TimeoutError:
            return StepResult(
                step=step.name,
                ok=False,
                dry_run=False,
                summary=f"{method} {shown}: no answer within {step.timeout_s:g}s",
                details=details,
            )
        except httpx.HTTPError as exc:
            return StepResult(
                step=step.name,
                ok=False,
                dry_run=False,
                summary=f"{method} {shown}: {type(exc).__name__}"[:500],
                details=details,
            )
        details.update(status=status, body_bytes=total, body_dropped_bytes=total - len(kept))
        ok = 200 <= status < 300
        return StepResult(
            step=step.name,
            ok=ok,
            dry_run=False,
            summary=f"{method} {shown}: {status}" + ("" if ok else " (not a 2xx answer)"),
            output=kept.decode("utf-8", "replace"),
            details=details,
        )

    async def _send(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None, timeout_s: float
    ) -> tuple[int, bytes, int]:
        async with (
            httpx.AsyncClient(timeout=timeout_s, follow_redirects=False, trust_env=False, verify=self._verify) as http,
            http.stream(method, url, headers=headers, content=body) as response,
        ):
            kept = bytearray()
            total = 0
            async for chunk in response.aiter_bytes():
                total += len(chunk)
                room = self._max_body_bytes - len(kept)
                if room > 0:
                    kept += chunk[:room]
            return response.status_code, bytes(kept), total


def _request(step: Step) -> tuple[str, str, dict[str, str], bytes | None]:
    method = step.action.upper()
    if method not in _METHODS:
        raise _InvalidRequestError(f"http: unknown method {step.action!r}; known: {', '.join(sorted(_METHODS))}")
    url = step.arguments.get("url")
    if not isinstance(url, str) or "\x00" in url or any(c in url for c in "\r\n\t "):
        raise _InvalidRequestError(f"http: url must be a string without spaces or control characters, not {url!r}")
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise _InvalidRequestError(f"http: url must be an http:// or https:// address with a host, not {url!r}")
    raw_headers = step.arguments.get("headers") or {}
    if not isinstance(raw_headers, Mapping):
        raise _InvalidRequestError("http: headers must be a mapping of names to values")
    headers: dict[str, str] = {}
    for name, value in raw_headers.items():
        if not isinstance(name, str) or not _HEADER_NAME.match(name):
            raise _InvalidRequestError(f"http: invalid header name {name!r}")
        if not isinstance(value, str) or any(c in value for c in "\r\n\x00"):
            raise _InvalidRequestError(f"http: header {name} must be a one-line string")
        headers[name] = value
    body: bytes | None = None
    if "body" in step.arguments and step.arguments["body"] is not None:
        try:
            body = json.dumps(step.arguments["body"], allow_nan=False, separators=(",", ":")).encode()
        except (TypeError, ValueError) as exc:
            raise _InvalidRequestError(f"http: body is not a JSON value: {exc}") from None
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
    return method, url, headers, body


def _shown_url(url: str) -> str:
    """The URL with any password in it hidden."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=f"{parts.username}:<hidden>@{host}").geturl()


def _shown(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: ("<hidden>" if _SECRET_HEADER.search(k) else v) for k, v in headers.items()}


def _describe(method: str, url: str, headers: Mapping[str, str], body: bytes | None) -> str:
    lines = [f"{method} {url}", *(f"{k}: {v}" for k, v in _shown(headers).items())]
    if body:
        shown = body[:4096].decode("utf-8", "replace")
        lines += ["", shown + (f"... ({len(body) - 4096} more bytes)" if len(body) > 4096 else "")]
    return "\n".join(lines)
