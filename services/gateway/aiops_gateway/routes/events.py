"""``/api/v1``: events."""

from __future__ import annotations

from fastapi import APIRouter

from aiops_gateway.errors import ERROR_RESPONSES

__all__ = ["router"]

router = APIRouter(tags=["events"], responses=ERROR_RESPONSES)
