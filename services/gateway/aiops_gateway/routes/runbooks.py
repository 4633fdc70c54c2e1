"""``/api/v1``: runbooks."""

from __future__ import annotations

from fastapi import APIRouter

from aiops_gateway.errors import ERROR_RESPONSES

__all__ = ["router"]

router = APIRouter(tags=["runbooks"], responses=ERROR_RESPONSES)
