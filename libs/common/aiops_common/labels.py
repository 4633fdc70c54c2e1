"""Command-line ``name=value`` label options, shared by the ``aiops`` commands and the services' own commands."""

from __future__ import annotations

import typer

__all__ = ["parse_labels"]


def parse_labels(pairs: list[str], option: str = "--label") -> dict[str, str]:
    """``["job=api", "zone=eu"]`` as a label map; a pair without ``=`` or a name is a usage error.

    >>> parse_labels(["job=api", "empty="])
    {'job': 'api', 'empty': ''}
    """
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"{option} takes name=value, got {pair!r}")
        out[name] = value
    return out
