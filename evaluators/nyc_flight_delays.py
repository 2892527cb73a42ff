"""Evaluator of the NYC flight delays task: arrival delay of each flight, in minutes.

Metrics (all on one split's rows; ``y`` = true ``arr_delay``, ``p`` = predicted, in minutes):

* ``mae`` (primary, minimize): mean absolute error, ``mean(|y - p|)``; scikit-learn's ``mean_absolute_error``.
* ``rmse`` (minimize): root mean squared error, ``sqrt(mean((y - p)^2))``; ``root_mean_squared_error``.
* ``within_15`` (maximize): share of flights predicted within 15 minutes, ``mean(|y - p| <= 15)``, in [0, 1].
  scikit-learn has no such metric, so it is computed with numpy.

All three are means over flights (RMSE the square root of one), so ``row_scores`` gives their per-row form for
the leaderboard's paired bootstrap intervals.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import mean_absolute_error, root_mean_squared_error

from harness.scoring import Evaluator, RowScore

#: Tolerance of ``within_15``, in minutes (inclusive).
WITHIN_MINUTES = 15.0


class NYCFlightDelaysEvaluator(Evaluator):
    """Scores predicted arrival delays against the true ones (see the module docstring)."""

    def score(self, predictions: pd.DataFrame, reference: pd.DataFrame) -> dict[str, float]:
        """Score one split.

        Args:
            predictions: columns ``id`` (str), ``arr_delay`` (float64, finite), aligned row by row to
                ``reference``; shape (n, 2).
            reference: columns ``id``, ``arr_delay`` (float64, minutes), ``split``; shape (n, 3).

        Returns:
            ``{"mae": ..., "rmse": ..., "within_15": ...}``: minutes, minutes, a share in [0, 1].
        """
        truth = reference["arr_delay"].to_numpy(dtype="float64")
        predicted = predictions["arr_delay"].to_numpy(dtype="float64")
        return {
            "mae": float(mean_absolute_error(truth, predicted)),
            "rmse": float(root_mean_squared_error(truth, predicted)),
            "within_15": float(np.mean(np.abs(truth - predicted) <= WITHIN_MINUTES)),
        }

    def row_scores(self, predictions: pd.DataFrame, reference: pd.DataFrame) -> dict[str, object]:
        """Per-flight values of each metric (shape (n,)): ``|y - p|``, ``(y - p)^2`` under a square root, and
        ``|y - p| <= 15`` as 0/1; their means are :meth:`score`'s values."""
        error = reference["arr_delay"].to_numpy(dtype="float64") - predictions["arr_delay"].to_numpy(dtype="float64")
        return {
            "mae": np.abs(error),
            "rmse": RowScore(error**2, np.sqrt),
            "within_15": (np.abs(error) <= WITHIN_MINUTES).astype("float64"),
        }
