"""Evaluator of the DC bike-share task: hourly rentals forecast as the 10 %, 50 % and 90 % quantiles.

The harness has already checked every row on the whole file (each quantile a finite number in the spec's bounds,
``q10 <= q50 <= q90``), so ``score`` only computes metrics. On one split's hours, ``y`` = observed rentals:

* ``pinball`` (primary, minimize): mean pinball loss over the levels, ``mean over a of mean_pinball_loss(y, q_a,
  alpha=a)`` (scikit-learn); for one level, ``mean(max(a * (y - q), (a - 1) * (y - q)))``. Rentals per hour.
* ``mae_q50`` (minimize): mean absolute error of the median forecast ``q50`` (``mean_absolute_error``).
* ``coverage_gap`` (minimize): ``|mean(q10 <= y <= q90) - 0.8|``: 0 when the 80 % interval holds 80 % of the hours.
  A perfect point forecast (every quantile = ``y``) covers every hour and scores 0.2, so the spec gives it no
  ``best``.

All three are means over hours (``coverage_gap`` a function of one), so ``row_scores`` gives their per-row form
for the leaderboard's paired bootstrap intervals.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import mean_absolute_error, mean_pinball_loss

from harness.scoring import Evaluator, RowScore


class DCBikeshareEvaluator(Evaluator):
    """Scores quantile forecasts against the observed rentals (see the module docstring)."""

    def score(self, predictions: pd.DataFrame, reference: pd.DataFrame) -> dict[str, float]:
        """Score one split.

        Args:
            predictions: ``id``, ``q10``, ``q50``, ``q90`` (float64, rentals), validated, aligned row by row to
                ``reference``; shape (n, 4).
            reference: ``id``, ``bikers`` (observed rentals of the hour), ``split``; shape (n, 3).

        Returns:
            ``{"pinball": ..., "mae_q50": ..., "coverage_gap": ...}``: rentals per hour twice, then a share in [0, 0.8].
        """
        group = self.spec.predictions.quantiles[0]
        truth = reference[group.target].to_numpy(dtype="float64")
        columns = dict(zip(group.levels, group.column_names, strict=True))
        losses = [
            mean_pinball_loss(truth, predictions[name].to_numpy(dtype="float64"), alpha=level)
            for level, name in columns.items()
        ]
        low = predictions[columns[min(group.levels)]].to_numpy(dtype="float64")
        high = predictions[columns[max(group.levels)]].to_numpy(dtype="float64")
        nominal = max(group.levels) - min(group.levels)
        median = predictions[columns[0.5]].to_numpy(dtype="float64")
        return {
            "pinball": float(np.mean(losses)),
            "mae_q50": float(mean_absolute_error(truth, median)),
            "coverage_gap": float(abs(np.mean((low <= truth) & (truth <= high)) - nominal)),
        }

    def row_scores(self, predictions: pd.DataFrame, reference: pd.DataFrame) -> dict[str, object]:
        """Per-hour values (shape (n,)): the pinball loss averaged over the levels, ``|y - q50|``, and whether
        ``q10 <= y <= q90`` (0/1) under ``|mean - 0.8|``; their means (so transformed) are :meth:`score`'s values."""
        group = self.spec.predictions.quantiles[0]
        truth = reference[group.target].to_numpy(dtype="float64")
        columns = dict(zip(group.levels, group.column_names, strict=True))
        pinball = np.zeros(len(truth))
        for level, name in columns.items():
            diff = truth - predictions[name].to_numpy(dtype="float64")
            pinball += np.maximum(level * diff, (level - 1) * diff)
        low = predictions[columns[min(group.levels)]].to_numpy(dtype="float64")
        high = predictions[columns[max(group.levels)]].to_numpy(dtype="float64")
        nominal = max(group.levels) - min(group.levels)
        median = predictions[columns[0.5]].to_numpy(dtype="float64")
        return {
            "pinball": pinball / len(columns),
            "mae_q50": np.abs(truth - median),
            "coverage_gap": RowScore(
                ((low <= truth) & (truth <= high)).astype("float64"), lambda m: np.abs(m - nominal)
            ),
        }
