"""The operator UI: static assets shipped in this package (no CDN, nothing fetched at run time)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

__all__ = ["STATIC_DIR", "install_ui"]

STATIC_DIR = Path(__file__).parent / "static"

#: Browsers check every asset again (a cheap 304 by ETag), so an upgraded gateway never runs with old scripts.
_REVALIDATE = {"Cache-Control": "no-cache"}


class _Assets(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(_REVALIDATE)
        return response


def install_ui(app: FastAPI) -> None:
    """``/`` serves the single page; ``/ui/…`` its scripts, styles and icons."""
    app.mount("/ui", _Assets(directory=STATIC_DIR), name="ui")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers=_REVALIDATE)
