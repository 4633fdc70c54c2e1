"""``/api/v1``: feedback."""

from __future__ import annotations

from fastapi import APIRouter

from aiops_gateway.errors import ERROR_RESPONSES

__all__ = ["router"]

router = APIRouter(tags=["feedback"], responses=ERROR_RESPONSES)
