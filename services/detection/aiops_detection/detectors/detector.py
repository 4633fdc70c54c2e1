"""The one detector API every tier shares: river-style ``learn_one``/``score_one`` plus a batch ``score_many``."""

from __future__ import annotations

import copy
import inspect
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Generic, Self, TypeVar

import numpy as np
import numpy.typing as npt

__all__ = ["Detector", "Estimator", "FloatArray", "as_panel"]

FloatArray = npt.NDArray[np.float64]
X = TypeVar("X")


def as_panel(values: npt.ArrayLike | Sequence[Sequence[float]]) -> FloatArray:
    """A ``(series, time)`` float block; one series may be given as a 1-D array. NaN pads ragged rows."""
    if isinstance(values, Sequence) and values and all(isinstance(row, Sequence | np.ndarray) for row in values):
        rows = [np.asarray(row, dtype=np.float64) for row in values]
        panel = np.full((len(rows), max(row.size for row in rows)), np.nan)
        for i, row in enumerate(rows):
            panel[i, : row.size] = row
        return panel
    panel = np.asarray(values, dtype=np.float64)
    if panel.ndim == 1:
        panel = panel[None, :]
    if panel.ndim != 2:
        raise ValueError(f"expected a (series, time) block, got shape {panel.shape}")
    return panel


class Estimator:
    """Anything learned online: constructor arguments are the hyperparameters, stored under their own names.

    ``clone()`` makes a fresh, unfitted copy with the same ones; an estimator
    pickles with its state.
    """

    def clone(self) -> Self:
        """A new, unfitted estimator with the same hyperparameters (estimator arguments are cloned too)."""
        params = {
            name: value.clone() if isinstance(value, Estimator) else copy.deepcopy(value)
            for name, value in self.get_params().items()
        }
        return type(self)(**params)

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments this estimator was built with."""
        names = [
            name
            for name, parameter in inspect.signature(type(self).__init__).parameters.items()
            if name != "self" and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
        ]
        return {name: getattr(self, name) for name in names}

    def __repr__(self) -> str:
        params = ", ".join(f"{name}={value!r}" for name, value in self.get_params().items())
        return f"{type(self).__name__}({params})"


class Detector(Estimator, ABC, Generic[X]):
    """An online anomaly detector for one series.

    ``score_one(x)`` rates ``x`` against what was learned so far, in ``[0, 1]``, and
    changes nothing; ``learn_one(x)`` then adds it. A detector scores 0 until it has
    seen enough history (its cold start). Thresholding is left to the caller.
    """

    @abstractmethod
    def learn_one(self, x: X) -> None:
        """Update the state with one observation."""

    @abstractmethod
    def score_one(self, x: X) -> float:
        """Anomaly score of one observation in ``[0, 1]``; does not change the state."""

    def score_many(self, batch: Sequence[Sequence[X]] | npt.NDArray[Any]) -> FloatArray:
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
