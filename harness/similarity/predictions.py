"""Prediction similarity between teams on the hidden rows: how far apart two teams' predictions are.

Independent models of the same data make alike errors: on a task where most of the variance cannot be predicted
(flight delays), every model's residual is mostly the truth's own noise, and the residuals of a median baseline
and of a ridge regression correlate at 0.97. The correlation of residuals is therefore shown, beside the field's
typical value, but a pair is flagged by how close its *predictions* are (:class:`PredictionPair`):

* numbers (plain numeric columns, quantiles, class probabilities): the **difference ratio**, the root-mean-square
  difference of the two teams' predictions over the mean of their standard deviations. A team that copied another's
  file and added noise of 1 % of its spread is at 0.01 to 0.1; the baseline and the ridge example are at 0.97.
* labels: the rows where the two teams' labels differ over the rows where either is wrong; Cohen's kappa of the two
  teams' labels (agreement beyond chance) is shown beside it.

Every pair is computed at once from Gram matrices (teams x rows), so a thousand teams take seconds, not hours.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.spec import TaskSpec

__all__ = ["PredictionPair", "TeamPredictions", "prediction_pairs", "team_predictions"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TeamPredictions:
    """The hidden-row predictions of the compared teams, as matrices (row ``i`` of a matrix is ``teams[i]``).

    Attributes:
        teams: team names.
        numbers: column -> (teams x rows) float64 predictions of a numeric column (plain, quantile, probability).
        truths: column -> (rows,) float64 truth of that column (a probability column's truth is 0/1).
        labels: column -> (teams x rows) int codes of a label column's predicted labels.
        label_truths: column -> (rows,) int codes of its truth (-1: a value outside the label set).
        n_labels: column -> number of codes.
    """

    teams: tuple[str, ...]
    numbers: Mapping[str, np.ndarray]
    truths: Mapping[str, np.ndarray]
    labels: Mapping[str, np.ndarray]
    label_truths: Mapping[str, np.ndarray]
    n_labels: Mapping[str, int]


def team_predictions(spec: TaskSpec, reference: pd.DataFrame, tables: Mapping[str, pd.DataFrame]) -> TeamPredictions:
    """Stack the teams' aligned prediction tables into matrices.

    Args:
        spec: the task spec.
        reference: the phase's reference rows (:class:`~harness.scoring.kept.PhaseReference` ``.reference``).
        tables: team -> its predictions aligned to ``reference`` (:func:`~harness.scoring.kept.aligned_predictions`).

    Returns:
        The matrices; columns that are neither numbers nor labels (free text, booleans) are left out.
    """
    pspec = spec.predictions
    teams = tuple(tables)
    numbers: dict[str, np.ndarray] = {}
    truths: dict[str, np.ndarray] = {}
    labels: dict[str, np.ndarray] = {}
    label_truths: dict[str, np.ndarray] = {}
    n_labels: dict[str, int] = {}
    for column in pspec.columns:
        if column.name == pspec.id_column or column.reference_column not in reference:
            continue
        if column.is_label:
            values = list(column.values or ())
            codes = {v: i for i, v in enumerate(values)} | {str(v): i for i, v in enumerate(values)}
            truth = reference[column.reference_column].map(lambda v, c=codes: c.get(v, c.get(str(v), -1)))
            label_truths[column.name] = truth.to_numpy(dtype=np.int64)
            labels[column.name] = np.vstack(
                [
                    tables[t][column.name].map(lambda v, c=codes: c.get(v, c.get(str(v), -1))).to_numpy(np.int64)
                    for t in teams
                ]
            )
            n_labels[column.name] = len(values)
        elif column.dtype in ("int", "float"):
            truths[column.name] = pd.to_numeric(reference[column.reference_column], errors="coerce").to_numpy(float)
            numbers[column.name] = np.vstack([tables[t][column.name].to_numpy(dtype=float) for t in teams])
    for quantiles in pspec.quantiles:
        for name in quantiles.column_names:
            truths[name] = pd.to_numeric(reference[quantiles.target], errors="coerce").to_numpy(float)
            numbers[name] = np.vstack([tables[t][name].to_numpy(dtype=float) for t in teams])
    for group in pspec.probabilities:
        target = reference[group.target].astype(str).to_numpy()
        for cls, name in zip(group.classes, group.column_names, strict=True):
            truths[name] = (target == str(cls)).astype(float)
            numbers[name] = np.vstack([tables[t][name].to_numpy(dtype=float) for t in teams])
    return TeamPredictions(teams, numbers, truths, labels, label_truths, n_labels)


@dataclass(frozen=True)
class PredictionPair:
    """How alike two teams' predictions are on the hidden rows.

    Attributes:
        team_a: one team (the pair is ordered by name).
        team_b: the other.
        kind: ``numbers``, ``labels`` or ``numbers+labels`` (which columns the figures average over).
        difference: the difference ratio (see the module docstring), 0 for identical predictions; the flag.
        residual_correlation: Pearson correlation of the two teams' residuals (prediction - truth), averaged over
            numeric columns; ``nan`` without numeric columns or for constant predictions.
        agreement: Cohen's kappa of the two teams' labels (labels), or the correlation of the predictions
            (numbers).
        typical_difference: the median difference ratio over all compared pairs (what independent teams show).
        flagged: ``difference`` at most the spec's ``similarity.prediction_threshold``.
    """

    team_a: str
    team_b: str
    kind: str
    difference: float
    residual_correlation: float
    agreement: float
    typical_difference: float
    flagged: bool


def _pair_number_stats(p: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(difference ratio, residual correlation, prediction correlation), each teams x teams, of one column."""
    n = p.shape[1]
    centred = p - p.mean(axis=1, keepdims=True)
    std = np.sqrt((centred**2).mean(axis=1))
    gram = centred @ centred.T / n
    mean_sq = std[:, None] ** 2 + std[None, :] ** 2 - 2 * gram  # mean square of the centred difference
    means = p.mean(axis=1)
    mean_sq = np.clip(mean_sq, 0.0, None) + (means[:, None] - means[None, :]) ** 2
    spread = (std[:, None] + std[None, :]) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(spread > 0, np.sqrt(mean_sq) / spread, np.where(mean_sq > 0, np.inf, 0.0))
        corr = gram / np.outer(std, std)
        residual = centred - (truth - truth.mean())
        rstd = np.sqrt((residual**2).mean(axis=1))
        rcorr = (residual @ residual.T / n) / np.outer(rstd, rstd)
    return ratio, rcorr, corr


def _pair_label_stats(codes: np.ndarray, truth: np.ndarray, n_codes: int) -> tuple[np.ndarray, np.ndarray]:
    """(difference ratio, Cohen's kappa), each teams x teams, of one label column."""
    teams, n = codes.shape
    agree = np.zeros((teams, teams))
    freq = np.zeros((teams, n_codes))
    for code in range(n_codes):
        hot = (codes == code).astype(float)
        agree += hot @ hot.T
        freq[:, code] = hot.mean(axis=1)
    wrong = (codes != truth[None, :]).astype(float)
    either_wrong = wrong.sum(axis=1)[:, None] + wrong.sum(axis=1)[None, :] - wrong @ wrong.T
    differ = n - agree
    observed = agree / n
    chance = freq @ freq.T
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(either_wrong > 0, differ / either_wrong, 0.0)
        kappa = np.where(chance < 1, (observed - chance) / (1 - chance), 1.0)
    return ratio, kappa


def _mean(stack: Sequence[np.ndarray], teams: int) -> np.ndarray:
    return np.mean(np.stack(stack), axis=0) if stack else np.full((teams, teams), np.nan)


def prediction_pairs(predictions: TeamPredictions, *, threshold: float) -> list[PredictionPair]:
    """Every pair of teams with its figures, flagged pairs first, then by difference ratio.

    Args:
        predictions: the stacked predictions (:func:`team_predictions`).
        threshold: the largest difference ratio flagged (``similarity.prediction_threshold``).

    Returns:
        One :class:`PredictionPair` per pair of teams (none with fewer than two teams or no comparable column).
    """
    teams = predictions.teams
    k = len(teams)
    if k < 2 or not (predictions.numbers or predictions.labels):
        return []
    ratios, rcorrs, corrs, kappas = [], [], [], []
    for name, matrix in predictions.numbers.items():
        ratio, rcorr, corr = _pair_number_stats(matrix, predictions.truths[name])
        ratios.append(ratio)
        rcorrs.append(rcorr)
        corrs.append(corr)
    for name, codes in predictions.labels.items():
        ratio, kappa = _pair_label_stats(codes, predictions.label_truths[name], predictions.n_labels[name])
        ratios.append(ratio)
        kappas.append(kappa)
    ratio = _mean(ratios, k)
    rcorr = _mean(rcorrs, k)
    agreement = _mean(kappas, k) if kappas else _mean(corrs, k)
    kind = "+".join(part for part, has in (("numbers", predictions.numbers), ("labels", predictions.labels)) if has)
    upper = np.triu_indices(k, 1)
    typical = float(np.median(ratio[upper]))
    pairs = []
    for i, j in zip(*upper, strict=True):
        a, b = sorted((teams[i], teams[j]))
        pairs.append(
            PredictionPair(
                team_a=a,
                team_b=b,
                kind=kind,
                difference=float(ratio[i, j]),
                residual_correlation=float(rcorr[i, j]),
                agreement=float(agreement[i, j]),
                typical_difference=typical,
                flagged=bool(ratio[i, j] <= threshold),
            )
        )
    pairs.sort(key=lambda p: (not p.flagged, p.difference, p.team_a, p.team_b))
    return pairs
