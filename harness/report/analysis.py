"""Error analysis of prediction tasks: a run's predictions joined with the reference, errors summed up per group.

The reference read here is the hidden one of the ``test`` phase: these tables are for judges' eyes only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from harness.errors import HarnessError
from harness.report.artifacts import artifact_files
from harness.spec import TaskSpec
from harness.store import ScoredRun

__all__ = [
    "GROUP_BY_PARAMETER",
    "default_group_by",
    "errors_by_group",
    "load_predictions",
    "load_reference",
    "load_test_input",
    "prediction_errors",
]

#: Spec parameter naming the columns error analysis groups by, comma-separated (``carrier,origin,month``).
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

    The spec's ``parameters.report_group_by`` (comma-separated, e.g. ``carrier,origin,month``) wins. Otherwise
    the first ``max_columns`` columns of the test input, in file order, that are neither the id nor a target and
    hold between 2 and ``max_distinct`` distinct values (for NYC flights: month, carrier, origin).
    """
    declared = spec.parameters.get(GROUP_BY_PARAMETER)
    if isinstance(declared, str) and declared.strip():
        return [c.strip() for c in declared.split(",") if c.strip()]
    if test_input is None:
        return []
    skip = {spec.predictions.id_column, *spec.target_columns, spec.data.split_column}
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


def prediction_errors(
    spec: TaskSpec,
    predictions: pd.DataFrame,
    reference: pd.DataFrame,
    test_input: pd.DataFrame | None = None,
    group_by: Sequence[str] = (),
) -> pd.DataFrame:
    """Join predictions with the reference (and the input's grouping columns), one row per reference id.

    Args:
        spec: the task (id column, targets, split column).
        predictions: the run's predictions (id column and targets).
        reference: the phase's reference (id column, targets, split column).
        test_input: the phase's input rows; its ``group_by`` columns are joined by id when given.
        group_by: columns to carry for grouping; taken from ``test_input`` or, failing that, the reference.

    Returns:
        Columns: the id (string), ``split`` (string) and the ``group_by`` columns present, then per target
        ``T``: ``T_true``, ``T_pred`` and, for numeric targets, ``T_error`` (pred - true) and ``T_abs_error``
        (float64); for other targets ``T_wrong`` (float64, 1.0 when pred != true). A missing prediction gives NaN.

    Raises:
        HarnessError: the predictions or the reference lack the id column or a target column.
    """
    id_column = spec.predictions.id_column
    targets = list(spec.target_columns)
    for name, frame, needed in (
        ("predictions", predictions, [id_column, *targets]),
        ("reference", reference, [id_column, *targets]),
    ):
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise HarnessError(f"the {name} lack column(s) {missing}; found {list(frame.columns)}")
    ref = reference[[id_column, *targets, *([spec.data.split_column] if spec.data.split_column in reference else [])]]
    ref = ref.rename(columns={t: f"{t}_true" for t in targets} | {spec.data.split_column: "split"})
    pred = predictions[[id_column, *targets]].drop_duplicates(subset=[id_column], keep="first")
    pred = pred.rename(columns={t: f"{t}_pred" for t in targets})
    joined = ref.merge(pred, on=id_column, how="left", validate="one_to_one")
    if "split" not in joined:
        joined["split"] = ""
    groups = [g for g in group_by if g not in (id_column, "split")]
    if groups:
        source = test_input if test_input is not None else reference
        present = [g for g in groups if g in source.columns and g not in joined.columns]
        if present:
            extra = source[[id_column, *present]].drop_duplicates(subset=[id_column], keep="first")
            joined = joined.merge(extra, on=id_column, how="left", validate="one_to_one")
    for target in targets:
        true, predicted = joined[f"{target}_true"], joined[f"{target}_pred"]
        if pd.api.types.is_numeric_dtype(true) and pd.api.types.is_numeric_dtype(predicted):
            error = predicted.astype("float64") - true.astype("float64")
            joined[f"{target}_error"] = error
            joined[f"{target}_abs_error"] = error.abs()
        else:
            wrong = (predicted.astype("string") != true.astype("string")).astype("float64")
            joined[f"{target}_wrong"] = wrong.where(predicted.notna(), np.nan)
    keep_groups = [g for g in groups if g in joined.columns]
    ordered = [id_column, "split", *keep_groups]
    rest = [c for c in joined.columns if c not in ordered]
    out = joined[ordered + rest].copy()
    out[id_column] = out[id_column].astype("string")
    out["split"] = out["split"].astype("string")
    return out


def errors_by_group(errors: pd.DataFrame, target: str, group: str) -> pd.DataFrame:
    """Summarise one target's errors per value of one column (rows without a prediction are counted apart).

    Args:
        errors: output of :func:`prediction_errors`.
        target: a target column name (``arr_delay``).
        group: a column of ``errors`` (``carrier``), or ``split``.

    Returns:
        One row per group value, sorted by it. Numeric targets: ``group``, ``rows`` (int64), ``missing``
        (int64, rows without a prediction), ``mean_abs_error``, ``median_abs_error``, ``mean_error`` (bias,
        pred - true; float64, in the target's unit). Other targets: ``group``, ``rows``, ``missing``,
        ``error_rate`` (float64, share of wrong predictions).

    Raises:
        KeyError: ``group`` or the target's error columns are not in ``errors``.
    """
    if group not in errors.columns:
        raise KeyError(f"no column {group!r} to group by; columns: {list(errors.columns)}")
    grouped = errors.groupby(group, dropna=False, sort=True)
    if f"{target}_abs_error" in errors.columns:
        abs_error, error = f"{target}_abs_error", f"{target}_error"
        out = pd.DataFrame(
            {
                "rows": grouped.size(),
                "missing": grouped[abs_error].apply(lambda s: int(s.isna().sum())),
                "mean_abs_error": grouped[abs_error].mean(),
                "median_abs_error": grouped[abs_error].median(),
                "mean_error": grouped[error].mean(),
            }
        )
    elif f"{target}_wrong" in errors.columns:
        wrong = f"{target}_wrong"
        out = pd.DataFrame(
            {
                "rows": grouped.size(),
                "missing": grouped[wrong].apply(lambda s: int(s.isna().sum())),
                "error_rate": grouped[wrong].mean(),
            }
        )
    else:
        raise KeyError(f"no error columns for target {target!r} in the errors table")
    out.index.name = group
    out = out.reset_index()
    out["rows"] = out["rows"].astype("int64")
    out["missing"] = out["missing"].astype("int64")
    return out
