"""The checks of each column kind beyond its dtype: labels, probability groups, quantile groups; the truth's specs.

Shared by :mod:`harness.scoring.predictions` (a team's file) and :mod:`harness.scoring.reference` (the truth):

* :func:`parse_column`: one column of strings to its spec dtype; a **label** column (``values``) must hold one of
  its allowed values, as exact text unless ``coerce`` (``7``, not ``7.0``, ``07`` or ``+7``);
* :func:`check_groups`: the row-wise checks of parsed columns: each probability group's rows sum to 1 within its
  tolerance (so an all-ones submission is refused and can never rank), each monotone quantile group's values do
  not decrease with the level;
* :func:`truth_columns`: how each reference truth column is parsed (a label's with the label's dtype and values,
  a probability group's target with the classes', a quantile group's target as float);
* :func:`perfect_predictions`: the prediction table that is exactly right for a reference (the self-score of
  ``harness task validate``).

Every message names the column(s), the count, the first offending id and its value, and the allowed set or
tolerance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

import numpy as np
import pandas as pd

from harness.scoring.columns import _are, _clip, _exact, _first_id, _parse_column, _plural
from harness.spec import ColumnSpec, PredictionSpec, ProbabilityGroup, QuantileGroup, TaskSpec

__all__ = ["check_groups", "class_values", "parse_column", "perfect_predictions", "truth_columns"]

#: The allowed set is shown with at most this many labels.
_SHOWN_LABELS: Final = 20
#: Slack added to a probability group's tolerance for float rounding of the sum (``0.1 + 0.2 + 0.7``).
_SUM_SLACK: Final = 1e-9


def _labels_text(values: Sequence[str | int]) -> str:
    shown = ", ".join(repr(v) if isinstance(v, str) else str(v) for v in values[:_SHOWN_LABELS])
    more = f", … ({len(values)} in all)" if len(values) > _SHOWN_LABELS else ""
    return f"[{shown}{more}]"


def _span(columns: Sequence[str]) -> str:
    return f"{columns[0]}..{columns[-1]}" if len(columns) > 2 else ", ".join(columns)


def parse_column(column: ColumnSpec, raw: pd.Series, ids: pd.Series, name: str) -> tuple[pd.Series, list[str]]:
    """Convert one column of strings to its spec dtype and check its kind; return the values and the problems.

    Args:
        column: the column's spec; a label column (``values`` given) is checked against its allowed values.
        raw: the column as read, strings (index ``0..n-1``).
        ids: the rows' ids as read, for messages (same index).
        name: the file's name, for messages.

    Returns:
        ``(values, problems)``: ``values`` with the spec dtype (a label: int64 for ``int``, object str for
        ``string``; others as :func:`~harness.scoring.columns._parse_column`), valid only when ``problems`` is
        empty; ``problems`` one sentence per problem (count, first id and value, the allowed set).
    """
    if not column.is_label:
        return _parse_column(column, raw, ids, name)
    return _parse_label(column, raw, ids)


def _parse_label(column: ColumnSpec, raw: pd.Series, ids: pd.Series) -> tuple[pd.Series, list[str]]:
    assert column.values is not None
    col, allowed = column.name, list(column.values)
    text = raw.astype(str)
    if column.dtype == "string":
        values: pd.Series = raw.astype(object)
        bad = (~text.isin(allowed)).to_numpy()
    else:
        exact = {str(v): v for v in allowed}
        parsed = text.map(exact)
        if column.coerce:
            numbers = pd.to_numeric(text.str.strip(), errors="coerce").astype("float64").to_numpy()
            ok = np.isfinite(numbers) & np.isin(numbers, np.array(allowed, dtype="float64"))
            parsed = parsed.where(parsed.notna(), pd.Series(numbers, index=raw.index).where(ok))
        bad = parsed.isna().to_numpy()
        values = parsed.fillna(0).astype("int64") if not bad.any() else parsed
    if not bad.any():
        return values, []
    n_bad = int(bad.sum())
    first = str(text[bad].iloc[0])
    problem = (
        f"column {col!r} must hold one of the labels {_labels_text(allowed)}; {_plural(n_bad, 'value')} "
        f"{_are(n_bad)} not, first: {_clip(first)!r} at id {_first_id(ids, bad)}"
    )
    problem += _label_hint(column, first)
    return values, [problem]


def _label_hint(column: ColumnSpec, value: str) -> str:
    """What to write instead of a refused label ``value``, when it looks like an allowed one spelled otherwise."""
    assert column.values is not None
    if column.dtype == "int":
        number = pd.to_numeric(pd.Series([value.strip()]), errors="coerce").iloc[0]
        if pd.notna(number) and float(number) in {float(v) for v in column.values}:
            return f"; write each label exactly as listed ({int(number)}, not {_clip(value)!r})"
        return ""
    near = [v for v in column.values if isinstance(v, str) and v.casefold() == value.strip().casefold()]
    if near:
        return f"; labels are exact text (case and blanks count): write {near[0]!r}"
    return ""


def class_values(group: ProbabilityGroup) -> tuple[str | int, ...]:
    """The group's classes as the reference's target column holds them after parsing: ints when every class is
    an int, else text (``str(c)`` for each)."""
    if all(isinstance(c, int) and not isinstance(c, bool) for c in group.classes):
        return tuple(group.classes)
    return tuple(str(c) for c in group.classes)


def _group_target_spec(group: ProbabilityGroup) -> ColumnSpec:
    classes = class_values(group)
    if isinstance(classes[0], int):
        return ColumnSpec(name=group.target, dtype="int", values=classes, coerce=True)
    return ColumnSpec(name=group.target, dtype="string", values=classes)


def truth_columns(pspec: PredictionSpec) -> dict[str, ColumnSpec]:
    """How each reference truth column (:attr:`PredictionSpec.reference_targets`) is parsed, by its name.

    A plain column's truth takes the column's dtype, bounds and labels (an int label's reference accepts any
    spelling of an allowed number: a reference is the author's file); a probability group's target holds a class
    label (int when every class is an int, else text); a quantile group's target is a float, without bounds.
    When several entries name one reference column, the first in spec order decides.
    """
    specs: dict[str, ColumnSpec] = {}
    for column in pspec.columns:
        if column.name == pspec.id_column or column.reference_column in specs:
            continue
        update: dict[str, object] = {"name": column.reference_column, "reference": None}
        if column.is_label and column.dtype == "int":
            update["coerce"] = True
        specs[column.reference_column] = column.model_copy(update=update)
    for group in pspec.probabilities:
        specs.setdefault(group.target, _group_target_spec(group))
    for quantiles in pspec.quantiles:
        specs.setdefault(quantiles.target, ColumnSpec(name=quantiles.target, dtype="float"))
    return specs


def check_groups(
    pspec: PredictionSpec, values: Mapping[str, pd.Series], ids: pd.Series, *, skip: frozenset[str] = frozenset()
) -> list[str]:
    """The row-wise checks of each probability and quantile group over parsed columns.

    Args:
        pspec: the prediction spec.
        values: parsed columns by name (float64, index ``0..n-1``).
        ids: the rows' ids as read, for messages (same index).
        skip: columns that are missing or already refused; a group with one of them is not checked.

    Returns:
        One sentence per refused group: probabilities whose row sums are more than ``tolerance`` from 1 (the first
        id and its sum; all-ones is such a row), quantiles that cross in a ``monotone`` group (the first id and the
        two values).
    """
    problems: list[str] = []

    def usable(columns: tuple[str, ...]) -> bool:
        return not set(columns) & skip and all(c in values for c in columns)

    for group in pspec.probabilities:
        if usable(group.column_names):
            problems += _check_probabilities(group, values, ids)
    for quantiles in pspec.quantiles:
        if quantiles.monotone and usable(quantiles.column_names):
            problems += _check_quantiles(quantiles, values, ids)
    return problems


def _matrix(columns: Sequence[str], values: Mapping[str, pd.Series]) -> np.ndarray:
    return np.column_stack([np.asarray(values[c], dtype="float64") for c in columns])


def _check_probabilities(group: ProbabilityGroup, values: Mapping[str, pd.Series], ids: pd.Series) -> list[str]:
    columns = group.column_names
    sums = _matrix(columns, values).sum(axis=1)
    bad = np.abs(sums - 1.0) > group.tolerance + _SUM_SLACK
    if not bad.any():
        return []
    n_bad = int(bad.sum())
    first = int(np.argmax(bad))
    return [
        f"row id {_first_id(ids, bad)}: probabilities sum to {sums[first]:.10g} ({_span(columns)}); each row must "
        f"sum to 1 (within {group.tolerance:g}), {_plural(n_bad, 'row')} {'does' if n_bad == 1 else 'do'} not; "
        "each column holds the probability of its class, so divide each row by its sum "
        "(df[cols] = df[cols].div(df[cols].sum(axis=1), axis=0))"
    ]


def _check_quantiles(group: QuantileGroup, values: Mapping[str, pd.Series], ids: pd.Series) -> list[str]:
    columns = group.column_names
    if len(columns) < 2:
        return []
    matrix = _matrix(columns, values)
    crossing = matrix[:, :-1] > matrix[:, 1:]  # one column per pair of neighbouring levels
    rows = crossing.any(axis=1)
    if not rows.any():
        return []
    n_rows = int(rows.sum())
    first = int(np.argmax(rows))
    pair = int(np.argmax(crossing[first]))
    low, high = columns[pair], columns[pair + 1]
    return [
        f"row id {_first_id(ids, rows)}: quantiles cross ({low} = {_exact(matrix[first, pair])} is above "
        f"{high} = {_exact(matrix[first, pair + 1])}); a higher level's quantile must not be lower ({_span(columns)}), "
        f"{_plural(n_rows, 'row')} {'crosses' if n_rows == 1 else 'cross'}; sort each row, "
        "e.g. df[cols] = np.sort(df[cols].to_numpy(), axis=1)"
    ]


def perfect_predictions(spec: TaskSpec, reference: pd.DataFrame) -> pd.DataFrame:
    """The prediction table that is exactly right for ``reference`` (``harness task validate``'s self-score).

    Args:
        spec: the task spec.
        reference: a reference as :func:`~harness.scoring.reference.load_reference` returns it.

    Returns:
        One row per reference row, in its order; columns: :attr:`PredictionSpec.all_columns`' names in order. A
        plain column holds its truth (a label its label); a probability group one-hot of the true class (float64
        1.0 / 0.0); a quantile group the true value at every level (float64).

    Raises:
        KeyError: ``reference`` lacks a truth column.
    """
    pspec = spec.predictions
    out: dict[str, pd.Series] = {pspec.id_column: reference[pspec.id_column]}
    for column in pspec.columns:
        if column.name != pspec.id_column:
            out[column.name] = reference[column.reference_column]
    for group in pspec.probabilities:
        truth = reference[group.target]
        for cls, name in zip(class_values(group), group.column_names, strict=True):
            out[name] = (truth == cls).astype("float64")
    for quantiles in pspec.quantiles:
        truth = reference[quantiles.target].astype("float64")
        for name in quantiles.column_names:
            out[name] = truth
    return pd.DataFrame({c.name: out[c.name] for c in pspec.all_columns}).reset_index(drop=True)
