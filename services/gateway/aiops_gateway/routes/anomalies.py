"""``/api/v1``: anomalies."""

from __future__ import annotations

from fastapi import APIRouter

from aiops_gateway.errors import ERROR_RESPONSES

__all__ = ["router"]

router = APIRouter(tags=["anomalies"], responses=ERROR_RESPONSES)
