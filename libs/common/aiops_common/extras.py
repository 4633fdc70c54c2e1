"""Optional parts of the platform: the extra that installs each, and one clear error when it is missing."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["DISTRIBUTION", "MissingExtraError", "requires_extra"]

#: The distribution whose extras (``pip install 'aiops-platform[ingestion]'``) install the optional parts.
DISTRIBUTION = "aiops-platform"


class MissingExtraError(ImportError):
    """An optional part's dependencies are not installed; the message is one line naming the extra."""

    def __init__(self, extra: str, what: str, module: str | None) -> None:
        self.extra = extra
        super().__init__(
            f"{what} needs the {extra!r} extra, which is not installed (no module {module!r}): "
            f"pip install '{DISTRIBUTION}[{extra}]'",
            name=module,
        )


@contextlib.contextmanager
def requires_extra(extra: str, what: str) -> Iterator[None]:
    """Turn a third-party ``ModuleNotFoundError`` raised inside the block into a :class:`MissingExtraError`.

    A missing platform module (``aiops_*``) is a packaging bug, not a missing extra, and is raised as it is.
    """
    try:
        yield
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.partition(".")[0].startswith("aiops_"):
            raise
        raise MissingExtraError(extra, what, exc.name) from exc
