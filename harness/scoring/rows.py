"""The per-row form of a metric, for paired bootstrap intervals (:mod:`harness.intervals`).

An evaluator's optional :meth:`~harness.scoring.Evaluator.row_scores` returns, per metric it can decompose, an
array of one value per row whose mean is the metric (MAE: ``|y - p|``; accuracy: ``y == p``; log loss:
``-log P[i, y_i]``), or a :class:`RowScore` when the metric is a function of such a mean (RMSE is the square root
of the mean squared error). The intervals then resample those values with one matrix product; a metric left out
(F1, AUC) is scored again with the evaluator's own ``score`` on each resample.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["RowScore", "row_score_parts"]


@dataclass(frozen=True)
class RowScore:
    """A metric equal to ``transform(mean(values))``.

    Attributes:
        values: float64, shape ``(n,)``: one value per row of the split, in the rows' order.
        transform: applied elementwise to an array of means (e.g. ``np.sqrt`` for RMSE); it must accept arrays.
    """

    values: np.ndarray
    transform: Callable[[np.ndarray], np.ndarray]


def row_score_parts(value: object) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray] | None]:
    """Per-row values and the transform (None = identity) of one entry of ``row_scores``' answer.

    Raises:
        ValueError: not a one-dimensional array of numbers or a :class:`RowScore`.
    """
    transform = None
    if isinstance(value, RowScore):
        transform = value.transform
        value = value.values
    array = np.asarray(value, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"expected one value per row (shape (n,)), got shape {array.shape}")
    return array, transform
