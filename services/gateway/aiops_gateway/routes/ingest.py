"""``/api/v1``: ingest."""

from __future__ import annotations

from fastapi import APIRouter

from aiops_gateway.errors import ERROR_RESPONSES

__all__ = ["router"]

router = APIRouter(tags=["ingest"], responses=ERROR_RESPONSES)
