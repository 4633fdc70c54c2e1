"""Shared foundation of every AIOps service: schemas, topics, settings, backends."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
