"""The HTTP API's OpenAPI request bodies and its Swagger UI, served from the installed package with no CDN."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from pydantic import BaseModel
from starlette.staticfiles import StaticFiles

__all__ = ["ASSETS_PATH", "binary_body", "install_docs", "json_body", "otlp_body"]

ASSETS_PATH = "/docs/assets"
"""Where Swagger UI's script, style sheet and icon are served from."""

_PROTOBUF = "application/x-protobuf"
_REF = "#/components/schemas/{model}"


def json_body(model: type[BaseModel], description: str) -> dict[str, Any]:
    """A required JSON request body of ``model``, whose schema :func:`install_docs` adds to the components."""
    return {
        "required": True,
        "description": description,
        "content": {"application/json": {"schema": {"$ref": _REF.format(model=model.__name__)}}},
    }


def binary_body(description: str, media_type: str = _PROTOBUF) -> dict[str, Any]:
    """A required binary request body (Prometheus remote write's snappy protobuf)."""
    return {
        "required": True,
        "description": description,
        "content": {media_type: {"schema": {"type": "string", "format": "binary"}}},
    }


def otlp_body(message: str) -> dict[str, Any]:
    """An OTLP/HTTP request body: the ``message`` of opentelemetry-proto as binary protobuf or OTLP/JSON."""
    return {
        "required": True,
        "description": (
            f"An OTLP `{message}`, as binary protobuf or OTLP/JSON (gzip Content-Encoding accepted). "
            "The response has the request's Content-Type; a refusal's body is a `google.rpc.Status`."
        ),
        "content": {
            _PROTOBUF: {"schema": {"type": "string", "format": "binary"}},
            "application/json": {
                "schema": {
                    "type": "object",
                    "description": f"{message} in the OTLP/JSON encoding (camelCase fields, hex trace and span ids)",
                    "additionalProperties": True,
                }
            },
        },
    }


def _swagger_ui_assets() -> Path:
    """The Swagger UI 5 distribution that the swagger-ui-py package ships (found without importing it)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the swagger-ui-py package is not installed; it serves /docs")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


def install_docs(app: FastAPI, models: Iterable[type[BaseModel]]) -> None:
    """``/docs`` (Swagger UI from local assets) and an ``/openapi.json`` with the schemas of ``models``.

    ``models`` are those named by the :func:`json_body` request bodies of the routes.

    The app must be made with ``docs_url=None, redoc_url=None``: FastAPI's own pages
    load their scripts from a CDN, which a platform without internet access cannot reach.
    """
    app.mount(ASSETS_PATH, StaticFiles(directory=_swagger_ui_assets()), name="swagger-ui-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - API",
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PATH}/favicon-32x32.png",
        )

    app.add_api_route("/docs", docs, methods=["GET"], include_in_schema=False)
    app.openapi = _openapi(app, tuple(models))  # type: ignore[method-assign]  # FastAPI's documented way


def _openapi(app: FastAPI, models: tuple[type[BaseModel], ...]) -> Callable[[], dict[str, Any]]:
    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
            for model in models:
                schema = model.model_json_schema(ref_template=_REF)
                schemas.update(schema.pop("$defs", {}))
                schemas[model.__name__] = schema
            app.openapi_schema = document
        return app.openapi_schema

    return build
