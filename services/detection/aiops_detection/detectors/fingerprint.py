"""A hash of the code whose objects a checkpoint or a trained model pickles, so other code never loads them."""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import ModuleType

__all__ = ["code_fingerprint"]


def code_fingerprint(*modules: ModuleType) -> str:
    """Hash of the source of the modules whose objects a checkpoint pickles.

    Pickles hold objects' private attributes: a state written by other code may load and
    then fail. A checkpoint or model carries this, and other code does not load it.
    """
    digest = hashlib.sha256()
    for module in sorted(modules, key=lambda m: m.__name__):
        digest.update(module.__name__.encode())
        digest.update(Path(str(module.__file__)).read_bytes())
    return digest.hexdigest()[:16]
