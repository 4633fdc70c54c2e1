"""The one detector API every tier shares: river-style ``learn_one``/``score_one`` plus a batch ``score_many``."""

from __future__ import annotations

import copy
import inspect
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Generic, Self, TypeVar

import numpy as np
import numpy.typing as npt

__all__ = ["Detector", "FloatArray", "as_panel"]

FloatArray = npt.NDArray[np.float64]
X = TypeVar("X")


def as_panel(values: npt.ArrayLike) -> FloatArray:
    """A ``(series, time)`` float block; one series may be given as a 1-D array. NaN pads ragged rows."""
    panel = np.asarray(values, dtype=np.float64)
    if panel.ndim == 1:
        panel = panel[None, :]
    if panel.ndim != 2:
        raise ValueError(f"expected a (series, time) block, got shape {panel.shape}")
    return panel


class Detector(ABC, Generic[X]):
    """An online anomaly detector for one series.

    ``score_one(x)`` rates ``x`` against what was learned so far, in ``[0, 1]``, and
    changes nothing; ``learn_one(x)`` then adds it. A detector scores 0 until it has
    seen enough history (its cold start). Thresholding is left to the caller.

    Constructor arguments are the hyperparameters: ``clone()`` makes a fresh,
    unfitted detector with the same ones, and a detector pickles with its state.
    """

    @abstractmethod
    def learn_one(self, x: X) -> None:
        """Update the state with one observation."""

    @abstractmethod
    def score_one(self, x: X) -> float:
        """Anomaly score of one observation in ``[0, 1]``; does not change the state."""

    def score_many(self, batch: Sequence[Sequence[X]]) -> FloatArray:
        """Scores of a ``(series, time)`` block, each row streamed through its own fresh clone.

        Point by point this equals ``score_one`` then ``learn_one``: every point is rated
        only against the points before it in its row. Subclasses replace the loop with
        vectorised code that gives the same numbers. Rows of float input may end in NaN
        padding; padded positions score NaN.
        """
        rows = [list(row) for row in batch]
        out = np.full((len(rows), max((len(row) for row in rows), default=0)), np.nan)
        for i, row in enumerate(rows):
            fresh = self.clone()
            for t, x in enumerate(row):
                if isinstance(x, float) and np.isnan(x):
                    break
                out[i, t] = fresh.score_one(x)
                fresh.learn_one(x)
        return out

    def clone(self) -> Self:
        """A new, unfitted detector with the same hyperparameters."""
        return type(self)(**copy.deepcopy(self.get_params()))

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments this detector was built with (stored under the same attribute names)."""
        names = [
            name
            for name, parameter in inspect.signature(type(self).__init__).parameters.items()
            if name != "self" and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
        ]
        return {name: getattr(self, name) for name in names}

    def __repr__(self) -> str:
        params = ", ".join(f"{name}={value!r}" for name, value in self.get_params().items())
        return f"{type(self).__name__}({params})"
