"""Label names and label sets: what Prometheus accepts, checked against the request limits."""

from __future__ import annotations

import re
from collections.abc import Mapping

from aiops_ingestion.normalize._limits import Limits

__all__ = ["LabelChecker", "label_name_problem"]

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def label_name_problem(name: str, max_length: int) -> str | None:
    """Why ``name`` is not a valid label name, or None when it is."""
    if not name:
        return "empty label name"
    if len(name) > max_length:
        return f"label name {name[:40]!r}... is {len(name)} characters, more than the limit of {max_length}"
    if not _LABEL_NAME.fullmatch(name):
        return f"label name {name!r} is invalid (letters, digits and _ only, not starting with a digit)"
    if name.startswith("__"):
        return f"label name {name!r} is reserved (names starting with __ are internal)"
    return None


class LabelChecker:
    """Checks the label sets of one request against the limits.

    Names already found valid are remembered, so the regular expression runs once
    per distinct name rather than once per label of every series.
    """

    __slots__ = ("_good_names", "_max_labels", "_max_name", "_max_value")

    def __init__(self, limits: Limits) -> None:
        self._max_labels = limits.max_labels_per_series
        self._max_name = limits.max_label_name_length
        self._max_value = limits.max_label_value_length
        self._good_names: set[str] = set()

    def problem(self, labels: Mapping[str, str]) -> str | None:
        """Why ``labels`` are refused (too many, bad name, too long a value), or None."""
        if len(labels) > self._max_labels:
            return f"{len(labels)} labels, more than the limit of {self._max_labels}"
        # Fast path, run for every series: set and max() over the dict work in C.
        if labels.keys() <= self._good_names and (not labels or max(map(len, labels.values())) <= self._max_value):
            return None
        for name, value in labels.items():
            if name not in self._good_names:
                problem = label_name_problem(name, self._max_name)
                if problem:
                    return problem
                self._good_names.add(name)
            if len(value) > self._max_value:
                return f"label {name} has a value of {len(value)} characters, more than the limit of {self._max_value}"
        return None

    def problem_truncating(self, labels: dict[str, str]) -> str | None:
        """Like :meth:`problem`, but cuts over-long values down to the limit instead of refusing them.

        For logs and spans, whose attributes (a stack trace, an SQL statement) are
        often long: the record is still worth keeping.
        """
        limit = self._max_value
        for name, value in labels.items():
            if len(value) > limit:
                labels[name] = value[: limit - 3] + "..."
        return self.problem(labels)
