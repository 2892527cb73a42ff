"""Evaluator of the Seattle weather task: the probability of each weather type of a day.

The harness has already checked every probability row (each value in [0, 1], the row summing to 1 within the
spec's tolerance) on the whole file, so ``score`` only computes metrics. Metrics (on one split's days; ``y`` = the
observed ``weather``, ``P`` = the predicted probabilities, one column per class in the spec's order):

* ``log_loss`` (primary, minimize): multi-class log loss, ``-mean(log P[i, y_i])`` (natural log); scikit-learn's
  ``log_loss`` with ``labels=`` the five classes (so a split lacking a class is still scored against all five).
  Probabilities of 0 are clipped by scikit-learn to machine epsilon: a confident wrong answer costs about 36.
* ``macro_f1`` (maximize): F1 of the most probable class, unweighted mean over the five classes
  (``f1_score(average="macro", labels=..., zero_division=0)``).
* ``accuracy`` (maximize): share of days whose most probable class is the observed one (``accuracy_score``).

Ties between equally probable classes go to the first in the spec's order (drizzle, fog, rain, snow, sun).

``row_scores`` gives the per-day form of log loss (``-log P[i, y_i]``, clipped and normalised as scikit-learn
does) and accuracy for the leaderboard's paired bootstrap intervals; macro F1 is rescored on resampled days.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score, log_loss

from harness.scoring import Evaluator


class SeattleWeatherEvaluator(Evaluator):
    """Scores class probabilities against the observed weather type (see the module docstring)."""

    def score(self, predictions: pd.DataFrame, reference: pd.DataFrame) -> dict[str, float]:
        """Score one split.

        Args:
            predictions: ``id`` and one float column per class (``p_drizzle`` ... ``p_sun``), validated, aligned
                row by row to ``reference``; shape (n, 6).
            reference: ``id``, ``weather`` (the observed class, text), ``split``; shape (n, 3).

        Returns:
            ``{"log_loss": ..., "macro_f1": ..., "accuracy": ...}``: nats per day, then two shares in [0, 1].
        """
        group = self.spec.predictions.probabilities[0]
        classes = [str(c) for c in group.classes]
        probabilities = predictions[list(group.column_names)].to_numpy(dtype="float64")
        truth = reference[group.target].astype(str).to_numpy()
        predicted = np.asarray(classes)[probabilities.argmax(axis=1)]
        return {
            # scikit-learn reads the probability columns in *sorted* label order whatever order labels= has:
            # reorder them, so the score stays right if the spec's classes are ever listed out of order
            "log_loss": float(log_loss(truth, probabilities[:, np.argsort(classes)], labels=sorted(classes))),
            "macro_f1": float(f1_score(truth, predicted, labels=classes, average="macro", zero_division=0)),
            "accuracy": float(accuracy_score(truth, predicted)),
        }

    def row_scores(self, predictions: pd.DataFrame, reference: pd.DataFrame) -> dict[str, object]:
        """Per-day values (shape (n,)) whose means are ``log_loss`` and ``accuracy``."""
        group = self.spec.predictions.probabilities[0]
        classes = [str(c) for c in group.classes]
        probabilities = predictions[list(group.column_names)].to_numpy(dtype="float64")
        probabilities = probabilities / probabilities.sum(axis=1, keepdims=True)
        eps = np.finfo(probabilities.dtype).eps
        truth = reference[group.target].astype(str).to_numpy()
        position = {c: i for i, c in enumerate(classes)}
        column = np.fromiter((position[t] for t in truth), dtype=np.int64, count=len(truth))
        chosen = np.clip(probabilities[np.arange(len(truth)), column], eps, 1 - eps)
        return {
            "log_loss": -np.log(chosen),
            "accuracy": (probabilities.argmax(axis=1) == column).astype(np.float64),
        }
