"""Error analysis of prediction tasks: a run's predictions joined with the reference, errors summed up per group.

:func:`review_targets` says what is analysed for each kind of prediction column (numbers, labels, probability
groups, quantile groups); :func:`prediction_errors` pairs each with its truth in the reference (by the id column and
the spec's reference names) and :func:`errors_by_group` sums errors up per value of a grouping column (the spec's
``report.group_by``, the forecast horizon, the split). Classification and forecast tables (confusion matrix,
calibration, interval coverage) are in :mod:`harness.report.kinds`.

The reference read here is the hidden one of the ``test`` phase: these tables are for judges' eyes only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from harness.errors import HarnessError
from harness.report.artifacts import artifact_files
from harness.spec import TaskSpec
from harness.store import ScoredRun

__all__ = [
    "GROUP_BY_PARAMETER",
    "ReviewTarget",
    "default_group_by",
    "errors_by_group",
    "load_predictions",
    "load_reference",
    "load_test_input",
    "prediction_errors",
    "review_targets",
]

#: Old spec parameter naming the columns error analysis groups by, comma-separated (``carrier,origin,month``); a
#: fallback for specs written before ``report: {group_by: [...]}``.
GROUP_BY_PARAMETER = "report_group_by"


def _read_csv_ids_as_text(path: Path, id_column: str) -> pd.DataFrame:
    return pd.read_csv(path, dtype={id_column: "string"}, low_memory=False)


def load_predictions(spec: TaskSpec, run: ScoredRun) -> pd.DataFrame | None:
    """A run's predictions (``artifacts/output/<predictions.file>``), ids as strings; ``None`` if absent.

    Files larger than ``predictions.max_mb`` are not read (``None``).
    """
    files = artifact_files(run, spec.predictions.file)
    path = files.get("predictions")
    if path is None or path.stat().st_size > spec.predictions.max_mb * 1024 * 1024:
        return None
    return _read_csv_ids_as_text(path, spec.predictions.id_column)


def load_reference(spec: TaskSpec, phase: str = "test") -> pd.DataFrame | None:
    """The phase's reference (for ``test``: the hidden one, judges only), ids as strings; ``None`` if absent."""
    path = spec.reference_path(phase)
    return _read_csv_ids_as_text(path, spec.predictions.id_column) if path.is_file() else None


def load_test_input(spec: TaskSpec, phase: str = "test") -> pd.DataFrame | None:
    """The rows to predict of a phase (its input's ``predict_file``, else the first CSV holding the id column).

    Returns:
        The input table with ids as strings, or ``None`` when the data is not prepared or has no such file.
    """
    folder = spec.input_dir(phase)
    id_column = spec.predictions.id_column
    if spec.data.predict_file:
        path = folder / spec.data.predict_file
        return _read_csv_ids_as_text(path, id_column) if path.is_file() else None
    if not folder.is_dir():
        return None
    for path in sorted(folder.rglob("*.csv")):
        header = pd.read_csv(path, nrows=0)
        if id_column in header.columns:
            return _read_csv_ids_as_text(path, id_column)
    return None


def default_group_by(
    spec: TaskSpec, test_input: pd.DataFrame | None, *, max_columns: int = 3, max_distinct: int = 24
) -> list[str]:
    """Columns to break errors down by, when the judge gave none.

    The spec's ``report.group_by`` wins (columns of the predict file or of the reference), then the older
    ``parameters.report_group_by`` (comma-separated, e.g. ``carrier,origin,month``). Otherwise the first
    ``max_columns`` columns of the test input, in file order, that are neither the id, a predicted or truth column,
    the split nor the horizon, and hold between 2 and ``max_distinct`` distinct values (for NYC flights: month,
    carrier, origin).
    """
    if spec.report.group_by:
        return list(spec.report.group_by)
    declared = spec.parameters.get(GROUP_BY_PARAMETER)
    if isinstance(declared, str) and declared.strip():
        return [c.strip() for c in declared.split(",") if c.strip()]
    if test_input is None:
        return []
    pspec = spec.predictions
    skip = {pspec.id_column, *pspec.target_columns, *pspec.reference_targets, spec.data.split_column}
    skip |= {spec.report.horizon} if spec.report.horizon else set()
    chosen = []
    for column in test_input.columns:
        if column in skip:
            continue
        distinct = test_input[column].nunique(dropna=True)
        if 2 <= distinct <= max_distinct:
            chosen.append(str(column))
        if len(chosen) == max_columns:
            break
    return chosen


TargetKind = Literal["number", "label", "probabilities", "quantiles", "other"]


@dataclass(frozen=True)
class ReviewTarget:
    """One thing the review analyses, with its truth column in the reference and its prediction columns.

    Attributes:
        name: the key of its columns in :func:`prediction_errors` (``T_true``, ...): a plain column's name, or a
            group's ``target`` (suffixed ``_probabilities`` / ``_quantiles`` if a plain column has that name).
        kind: ``number`` (int/float column), ``label`` (a column with ``values``), ``probabilities`` (a probability
            group), ``quantiles`` (a quantile group) or ``other`` (bool or free text).
        truth: the reference column holding the truth.
        columns: the prediction columns (one for plain columns; one per class or level for groups).
        classes: labels and groups: the allowed values / classes as text, in spec order.
        levels: quantile groups: the levels, increasing.
        int_classes: the labels are whole numbers (compared by value, ``7.0`` as ``7``, shown as ``7``).
    """

    name: str
    kind: TargetKind
    truth: str
    columns: tuple[str, ...]
    classes: tuple[str, ...] = ()
    levels: tuple[float, ...] = ()
    int_classes: bool = False

    @property
    def central_intervals(self) -> list[tuple[int, int]]:
        """Quantiles: ``(lower, upper)`` level indexes of each central interval (levels summing to 1), widest
        first (``[(0, 2)]`` for levels 0.1, 0.5, 0.9)."""
        pairs = []
        for lo, low in enumerate(self.levels):
            for hi, high in enumerate(self.levels):
                if low < 0.5 < high and abs(low + high - 1) < 1e-9:
                    pairs.append((lo, hi))
        return sorted(pairs, key=lambda p: self.levels[p[0]])

    @property
    def median_column(self) -> str:
        """Quantiles: the column of the level nearest 0.5 (the point forecast whose error is shown)."""
        index = min(range(len(self.levels)), key=lambda i: (abs(self.levels[i] - 0.5), i))
        return self.columns[index]


def review_targets(spec: TaskSpec) -> list[ReviewTarget]:
    """What the review analyses, in spec order: each plain predicted column, then each probability group, then
    each quantile group (see :class:`ReviewTarget`)."""
    pspec = spec.predictions
    targets: list[ReviewTarget] = []
    for column in pspec.columns:
        if column.name == pspec.id_column:
            continue
        kind: TargetKind = "other"
        if column.is_label:
            kind = "label"
        elif column.dtype in ("int", "float"):
            kind = "number"
        classes = tuple(str(v) for v in column.values) if column.values is not None else ()
        targets.append(
            ReviewTarget(
                column.name, kind, column.reference_column, (column.name,), classes, int_classes=column.dtype == "int"
            )
        )
    used = {t.name for t in targets}
    for group in pspec.probabilities:
        name = group.target if group.target not in used else f"{group.target}_probabilities"
        classes = tuple(str(c) for c in group.classes)
        whole = all(isinstance(c, int) for c in group.classes)
        targets.append(
            ReviewTarget(name, "probabilities", group.target, group.column_names, classes, int_classes=whole)
        )
        used.add(name)
    for qgroup in pspec.quantiles:
        name = qgroup.target if qgroup.target not in used else f"{qgroup.target}_quantiles"
        targets.append(ReviewTarget(name, "quantiles", qgroup.target, qgroup.column_names, levels=qgroup.levels))
        used.add(name)
    return targets


def _label_text(values: pd.Series, int_labels: bool) -> pd.Series:
    """Labels as text to compare: whole numbers by value (``7.0`` and ``7`` alike, shown ``7``), else exact text."""
    if not int_labels:
        return values.astype("string")
    number = pd.to_numeric(values, errors="coerce")
    whole = number.where(number.notna() & (number % 1 == 0))
    text = whole.astype("Int64").astype("string")
    return text.where(whole.notna(), values.astype("string"))


def _numbers(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns as float64; text that is no number (a run kept under an older spec) becomes NaN, never an error."""
    return frame.apply(lambda column: pd.to_numeric(column, errors="coerce")).astype("float64")


def _target_columns(target: ReviewTarget, true: pd.Series, pred: pd.DataFrame) -> dict[str, pd.Series]:
    """The error columns of one target (see :func:`prediction_errors`), indexed like ``true``."""
    t = target.name
    out: dict[str, pd.Series] = {}
    has_prediction = pred[list(target.columns)].notna().all(axis=1)
    if target.kind == "probabilities":
        probs = _numbers(pred[list(target.columns)])
        out[f"{t}_true"] = _label_text(true, target.int_classes)
        top = probs.fillna(-1.0).to_numpy().argmax(axis=1)
        predicted = pd.Series(np.asarray(target.classes, dtype=object)[top], index=true.index).astype("string")
        out[f"{t}_pred"] = predicted.where(has_prediction)
        out[f"{t}_wrong"] = (predicted != out[f"{t}_true"]).astype("float64").where(has_prediction)
        position = {c: i for i, c in enumerate(target.classes)}
        index = out[f"{t}_true"].map(position)
        known = index.notna().to_numpy()
        p_true = np.full(len(true), np.nan)
        rows = np.flatnonzero(known)
        p_true[rows] = probs.to_numpy()[rows, index.to_numpy()[known].astype(int)]
        out[f"{t}_p_true"] = pd.Series(p_true, index=true.index)
        out |= {column: probs[column] for column in target.columns}
        return out
    if target.kind == "quantiles":
        values = _numbers(pred[list(target.columns)])
        observed = pd.to_numeric(true, errors="coerce").astype("float64")
        out[f"{t}_true"] = observed
        out |= {column: values[column] for column in target.columns}
        out[f"{t}_pred"] = values[target.median_column]
        error = values[target.median_column] - observed
        out[f"{t}_error"], out[f"{t}_abs_error"] = error, error.abs()
        losses = []
        for level, column in zip(target.levels, target.columns, strict=True):
            diff = observed - values[column]
            losses.append(np.maximum(level * diff, (level - 1) * diff))
        out[f"{t}_pinball"] = pd.concat(losses, axis=1).mean(axis=1, skipna=False)
        if target.central_intervals:
            lo, hi = target.central_intervals[0]
            inside = (values[target.columns[lo]] <= observed) & (observed <= values[target.columns[hi]])
            out[f"{t}_inside"] = inside.astype("float64").where(has_prediction)
        return out
    predicted = pred[target.columns[0]]
    if target.kind == "label":
        out[f"{t}_true"] = _label_text(true, target.int_classes)
        out[f"{t}_pred"] = _label_text(predicted, target.int_classes)
    else:
        out[f"{t}_true"], out[f"{t}_pred"] = true, predicted
    if target.kind == "number" and pd.api.types.is_numeric_dtype(true) and pd.api.types.is_numeric_dtype(predicted):
        error = predicted.astype("float64") - true.astype("float64")
        out[f"{t}_error"], out[f"{t}_abs_error"] = error, error.abs()
    else:
        wrong = out[f"{t}_pred"].astype("string") != out[f"{t}_true"].astype("string")
        out[f"{t}_wrong"] = wrong.astype("float64").where(predicted.notna(), np.nan)
    return out


def prediction_errors(
    spec: TaskSpec,
    predictions: pd.DataFrame,
    reference: pd.DataFrame,
    test_input: pd.DataFrame | None = None,
    group_by: Sequence[str] = (),
) -> pd.DataFrame:
    """Join predictions with the reference (and the grouping columns), one row per reference id.

    Predictions and reference are joined by the id column; each prediction column is paired with its truth by the
    spec's names (a plain column's ``reference``, a group's ``target``: :class:`ReviewTarget`).

    Args:
        spec: the task (id column, column kinds, reference names, split column, ``report.horizon``).
        predictions: the run's predictions (id column and every predicted column).
        reference: the phase's reference (id column, truth columns, split column).
        test_input: the phase's input rows (predict file); grouping columns are looked up there first.
        group_by: columns to carry for grouping, from ``test_input`` or, failing that, the reference. A
            forecast's ``report.horizon`` column is carried too.

    Returns:
        Columns: the id (string), ``split`` (string), the ``group_by`` (and horizon) columns found, then per
        :class:`ReviewTarget` ``T`` (see :func:`review_targets`):

        * number: ``T_true``, ``T_pred``, ``T_error`` (pred - true) and ``T_abs_error`` (float64, target's unit);
        * label and other: ``T_true``, ``T_pred`` (labels as text: whole numbers by value) and ``T_wrong``
          (float64, 1.0 when pred != true);
        * probabilities: ``T_true`` (true class, text), ``T_pred`` (class of highest probability), ``T_wrong``,
          ``T_p_true`` (probability given to the true class, NaN when the truth is no known class) and each
          probability column by its name (float64);
        * quantiles: ``T_true`` (float64), each quantile column by its name, ``T_pred`` (the level nearest 0.5),
          ``T_error``, ``T_abs_error``, ``T_pinball`` (mean pinball loss over the levels) and, with a central
          interval, ``T_inside`` (1.0 when the truth lies in the widest one, bounds included).

        A missing prediction gives NaN (``<NA>`` for text).

    Raises:
        HarnessError: the predictions lack the id column or a predicted column, or the reference lacks the id
            column or a truth column.
    """
    pspec = spec.predictions
    id_column = pspec.id_column
    for name, frame, needed in (
        ("predictions", predictions, [id_column, *pspec.target_columns]),
        ("reference", reference, [id_column, *pspec.reference_targets]),
    ):
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise HarnessError(f"the {name} lack column(s) {missing}; found {list(frame.columns)}")
    ref = reference.drop_duplicates(subset=[id_column], keep="first").reset_index(drop=True)
    ids = ref[id_column].astype("string")
    pred = predictions.drop_duplicates(subset=[id_column], keep="first").copy()
    pred.index = pd.Index(pred[id_column].astype("string"))
    pred = pred.reindex(pd.Index(ids)).reset_index(drop=True)
    split_column = spec.data.split_column
    split = ref[split_column].astype("string") if split_column in ref.columns else pd.Series("", index=ref.index)
    columns: dict[str, pd.Series] = {id_column: ids, "split": split.astype("string")}
    carried = [g for g in dict.fromkeys([*group_by, *([spec.report.horizon] if spec.report.horizon else [])])]
    for group in carried:
        if group in (id_column, "split") or group in columns:
            continue
        for source in (test_input, ref):
            if source is not None and group in source.columns:
                values = source.drop_duplicates(subset=[id_column], keep="first")
                values = values.set_index(values[id_column].astype("string"))[group]
                columns[group] = values.reindex(pd.Index(ids)).reset_index(drop=True)
                break
    for target in review_targets(spec):
        columns |= _target_columns(target, ref[target.truth], pred)
    return pd.DataFrame(columns)


def errors_by_group(errors: pd.DataFrame, target: str, group: str) -> pd.DataFrame:
    """Summarise one target's errors per value of one column (rows without a prediction are counted apart).

    Args:
        errors: output of :func:`prediction_errors`.
        target: a :attr:`ReviewTarget.name` (``arr_delay``, ``weather``, ``rentals``).
        group: a column of ``errors`` (``carrier``, the horizon), or ``split``.

    Returns:
        One row per group value, sorted by it. Numbers and quantile forecasts (of the median): ``group``,
        ``rows`` (int64), ``missing`` (int64, rows without a prediction), ``mean_abs_error``,
        ``median_abs_error``, ``mean_error`` (bias, pred - true; float64, in the target's unit); quantiles add
        ``pinball_loss`` (mean over rows and levels) and, with a central interval, ``coverage`` (share of truths
        in the widest one). Labels and probabilities: ``group``, ``rows``, ``missing``, ``error_rate`` (float64,
        share of wrong predictions; for probabilities, of the most probable class); probabilities add
        ``log_loss`` (mean of -ln p(true class), p clipped at 1e-15). No bias for labels or probabilities.

    Raises:
        KeyError: ``group`` or the target's error columns are not in ``errors``.
    """
    if group not in errors.columns:
        raise KeyError(f"no column {group!r} to group by; columns: {list(errors.columns)}")
    grouped = errors.groupby(group, dropna=False, sort=True)
    if f"{target}_abs_error" in errors.columns:
        abs_error, error = f"{target}_abs_error", f"{target}_error"
        parts = {
            "rows": grouped.size(),
            "missing": grouped[abs_error].apply(lambda s: int(s.isna().sum())),
            "mean_abs_error": grouped[abs_error].mean(),
            "median_abs_error": grouped[abs_error].median(),
            "mean_error": grouped[error].mean(),
        }
        if f"{target}_pinball" in errors.columns:
            parts["pinball_loss"] = grouped[f"{target}_pinball"].mean()
        if f"{target}_inside" in errors.columns:
            parts["coverage"] = grouped[f"{target}_inside"].mean()
    elif f"{target}_wrong" in errors.columns:
        wrong = f"{target}_wrong"
        parts = {
            "rows": grouped.size(),
            "missing": grouped[wrong].apply(lambda s: int(s.isna().sum())),
            "error_rate": grouped[wrong].mean(),
        }
        if f"{target}_p_true" in errors.columns:
            loss = -np.log(errors[f"{target}_p_true"].clip(lower=1e-15))
            parts["log_loss"] = loss.groupby(errors[group], dropna=False, sort=True).mean()
    else:
        raise KeyError(f"no error columns for target {target!r} in the errors table")
    out = pd.DataFrame(parts)
    out.index.name = group
    out = out.reset_index()
    out["rows"] = out["rows"].astype("int64")
    out["missing"] = out["missing"].astype("int64")
    return out
