"""Evaluator of the meter-digits task: the digit (0-9) read from each image.

The harness has already checked every row on the whole file (each ``digit`` exactly one of the spec's ``values``,
written as a whole number), so ``score`` only computes metrics. On one split's images, ``y`` = the true digit,
``p`` = the predicted one:

* ``accuracy`` (primary, maximize): share of images with ``p == y`` (scikit-learn's ``accuracy_score``).
* ``macro_f1`` (maximize): F1 per digit, unweighted mean over the ten digits (``f1_score(average="macro",
  labels=0..9, zero_division=0)``), so always answering one digit scores about 0.02, not its share.

``row_scores`` gives accuracy's per-row form (``p == y``) for the leaderboard's paired bootstrap intervals;
macro F1 is not a mean over rows, so its intervals rescore resampled rows with ``score``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score

from harness.scoring import Evaluator


class MeterDigitsEvaluator(Evaluator):
    """Scores predicted digits against the true ones (see the module docstring)."""

    def score(self, predictions: pd.DataFrame, reference: pd.DataFrame) -> dict[str, float]:
        """Score one split.

        Args:
            predictions: ``id``, ``digit`` (int64, 0-9), validated, aligned row by row to ``reference``; shape (n, 2).
            reference: ``id``, ``digit`` (int64), ``split``; shape (n, 3).

        Returns:
            ``{"accuracy": ..., "macro_f1": ...}``: two shares in [0, 1].
        """
        column = next(c for c in self.spec.predictions.columns if c.is_label)
        labels = list(column.values or ())
        truth = reference[column.reference_column].to_numpy(dtype="int64")
        predicted = predictions[column.name].to_numpy(dtype="int64")
        return {
            "accuracy": float(accuracy_score(truth, predicted)),
            "macro_f1": float(f1_score(truth, predicted, labels=labels, average="macro", zero_division=0)),
        }

    def row_scores(self, predictions: pd.DataFrame, reference: pd.DataFrame) -> dict[str, object]:
        """``{"accuracy": p == y as 0/1 per image, shape (n,)}``; macro F1 has no per-row form."""
        column = next(c for c in self.spec.predictions.columns if c.is_label)
        truth = reference[column.reference_column].to_numpy(dtype="int64")
        return {"accuracy": (predictions[column.name].to_numpy(dtype="int64") == truth).astype(np.float64)}
