"""The model registry: versioned detector and model artifacts, one protocol, one implementation per URL scheme.

>>> MODEL_BACKENDS.schemes
['file']
"""

from __future__ import annotations

from aiops_common.models._protocol import (
    ModelArtifact,
    ModelNotFoundError,
    ModelRegistry,
    ModelVersion,
    check_name,
)
from aiops_common.registry import BackendRegistry

__all__ = [
    "MODEL_BACKENDS",
    "ModelArtifact",
    "ModelNotFoundError",
    "ModelRegistry",
    "ModelVersion",
    "check_name",
    "open_model_registry",
]

MODEL_BACKENDS: BackendRegistry[ModelRegistry] = BackendRegistry("model registry")
MODEL_BACKENDS.register("file", "aiops_common.models.file:FileModelRegistry")


def open_model_registry(url: str) -> ModelRegistry:
    """The registry a URL names, e.g. ``file:///var/lib/aiops/models``."""
    return MODEL_BACKENDS.by_url(url)
