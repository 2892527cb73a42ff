"""Degenerate submissions derived from a task's spec: predictions that know nothing, which no sound task may reward.

``harness task validate`` scores each against the judges' test reference with the harness's own scoring path and
requires it to be refused by validation or to score strictly worse than the baseline there. Constants come from the
validation reference, which teams can see (scored on that same reference they would be oracle constants). The
kinds, each made only when the spec has columns it applies to:

| name | columns | values |
| --- | --- | --- |
| ``constant median`` | numbers, quantiles | the median of the validation reference's target |
| ``training mean`` | numbers, quantiles | the mean of the validation reference's target (a team can compute it) |
| ``majority class`` | labels | the most frequent label of the validation reference |
| ``uniform probabilities`` | probabilities | ``1 / classes`` everywhere |
| ``all-ones probabilities`` | probabilities | 1.0 in every class column |
| ``all-zeros probabilities`` | probabilities | 0.0 in every class column |
| ``one-hot of class C`` | probabilities | 1.0 for the reference's most frequent class, 0.0 elsewhere |
| ``shuffled reference`` | every column | the perfect predictions, permuted across ids (seeded) |

Columns a kind does not apply to hold a know-nothing value too (the median, the majority label, uniform
probabilities), so no degenerate submission is partly perfect.

:func:`perfect_predictions` is the reference written as a prediction table (one-hot probabilities, every quantile at
the observed value).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from harness.scoring import perfect_predictions
from harness.spec import ColumnSpec, TaskSpec

__all__ = ["Degenerate", "degenerate_submissions", "perfect_predictions"]

#: Seed of the shuffled-reference submission (fixed: validation is reproducible).
SHUFFLE_SEED = 12


@dataclass(frozen=True)
class Degenerate:
    """One degenerate submission.

    Attributes:
        name: what it is (``"constant median"``, ``"one-hot of class 'sun'"``), as shown in validate's report.
        predictions: one row per reference id, in reference order: the id column, then every
            ``spec.predictions.target_columns`` column.
    """

    name: str
    predictions: pd.DataFrame


def _truth(reference: pd.DataFrame, *names: str) -> pd.Series:
    """The first of ``names`` the reference holds (its target for a prediction column)."""
    for name in names:
        if name in reference.columns:
            return reference[name]
    raise KeyError(f"the reference holds none of the columns {list(names)}; it has {list(reference.columns)}")


def _numbers(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values, errors="coerce").astype("float64")


def _majority(values: pd.Series) -> Any:
    """The most frequent value; ties go to the smallest value's text, so the choice does not depend on row order."""
    counts = values.value_counts(dropna=True)
    top = counts.max()
    return min((v for v, n in counts.items() if n == top), key=str)


def _is_number(column: ColumnSpec) -> bool:
    return column.dtype in ("int", "float") and not column.is_label


def _constant(column: ColumnSpec, value: float, rows: int) -> np.ndarray:
    lo = column.min if column.min is not None else -np.inf
    hi = column.max if column.max is not None else np.inf
    value = float(np.clip(value, lo, hi))
    if column.dtype == "int":
        return np.full(rows, round(value), dtype="int64")
    return np.full(rows, value, dtype="float64")


def _know_nothing(spec: TaskSpec, reference: pd.DataFrame, stat: str, statistics: pd.DataFrame) -> dict[str, Any]:
    """One row per id of ``reference``, every target column at a constant: numbers and quantiles at ``stat``
    (median/mean) of their target in ``statistics``, labels (and text, bools) at its majority value,
    probabilities uniform."""
    pspec, rows = spec.predictions, len(reference)
    out: dict[str, Any] = {pspec.id_column: reference[pspec.id_column].to_numpy()}
    for column in pspec.columns:
        if column.name == pspec.id_column:
            continue
        truth = _truth(statistics, column.reference_column, column.name)
        if _is_number(column):
            numbers = _numbers(truth)
            out[column.name] = _constant(column, float(getattr(numbers, stat)()), rows)
        else:
            out[column.name] = np.full(rows, _majority(truth), dtype=object)
    for group in pspec.probabilities:
        for name in group.column_names:
            out[name] = np.full(rows, 1.0 / len(group.classes))
    for qgroup in pspec.quantiles:
        numbers = _numbers(_truth(statistics, qgroup.target))
        bounds = ColumnSpec(name="q", dtype="float", min=qgroup.min, max=qgroup.max)
        for name in qgroup.column_names:
            out[name] = _constant(bounds, float(getattr(numbers, stat)()), rows)
    return out


def degenerate_submissions(
    spec: TaskSpec, reference: pd.DataFrame, *, statistics: pd.DataFrame | None = None, seed: int = SHUFFLE_SEED
) -> list[Degenerate]:
    """The degenerate submissions that apply to the spec's columns (see the module docstring), in table order.

    Args:
        spec: the task spec.
        reference: the reference scored (:func:`harness.scoring.load_reference`): the ids of the rows and the
            source of the shuffled truth.
        statistics: the reference a team can see (the validation reference), the source of the constants
            (median, mean, majority class, the one-hot class); default ``reference``.
        seed: seed of the shuffle across ids.

    Returns:
        One :class:`Degenerate` per kind that applies; a kind whose table equals an earlier one's is left out.

    Raises:
        KeyError: the reference lacks a truth column.
    """
    pspec = spec.predictions
    stats = reference if statistics is None else statistics
    plain = [c for c in pspec.columns if c.name != pspec.id_column]
    numbers = any(_is_number(c) for c in plain) or bool(pspec.quantiles)
    made: list[Degenerate] = []

    def add(name: str, columns: dict[str, Any]) -> None:
        frame = pd.DataFrame(columns)
        if not any(frame.equals(d.predictions) for d in made):
            made.append(Degenerate(name, frame))

    if numbers:
        add("constant median", _know_nothing(spec, reference, "median", stats))
        add("training mean", _know_nothing(spec, reference, "mean", stats))
    if any(c.is_label for c in plain):
        add("majority class", _know_nothing(spec, reference, "median", stats))
    if pspec.probabilities:
        add("uniform probabilities", _know_nothing(spec, reference, "median", stats))
        for label, value in (("all-ones", 1.0), ("all-zeros", 0.0)):
            columns = _know_nothing(spec, reference, "median", stats)
            for group in pspec.probabilities:
                for name in group.column_names:
                    columns[name] = np.full(len(reference), value)
            add(f"{label} probabilities", columns)
        columns = _know_nothing(spec, reference, "median", stats)
        chosen = []
        for group in pspec.probabilities:
            labels = _truth(stats, group.target).astype(str)
            top = _majority(labels) if len(labels) else str(group.classes[0])
            chosen.append(top)
            for cls, name in zip(group.classes, group.column_names, strict=True):
                columns[name] = np.full(len(reference), 1.0 if str(cls) == top else 0.0)
        add(f"one-hot of class {', '.join(repr(c) for c in chosen)}", columns)
    if plain or pspec.probabilities or pspec.quantiles:
        perfect = perfect_predictions(spec, reference)
        order = np.random.default_rng(seed).permutation(len(perfect))
        if len(order) > 1 and (order == np.arange(len(order))).all():
            order = np.roll(order, 1)  # a permutation that moves nothing is no shuffle
        shuffled = perfect.copy()
        for name in pspec.target_columns:
            shuffled[name] = perfect[name].to_numpy()[order]
        add("shuffled reference", dict(shuffled.items()))
    return made
