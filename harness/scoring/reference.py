"""Reading a phase's reference file (the truth) as the evaluator sees it; its problems are the task's.

The truth columns are named by the spec independently of the prediction columns
(:attr:`~harness.spec.PredictionSpec.reference_targets`): a probability task's reference holds the true class, never
a one-hot table.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from harness.errors import EvaluatorError
from harness.scoring.kinds import class_values, parse_column, truth_columns
from harness.spec import TaskSpec

__all__ = ["load_reference"]


def load_reference(spec: TaskSpec, phase: str) -> pd.DataFrame:
    """Read a phase's reference file (the truth), as the evaluator sees it.

    Args:
        spec: the task spec.
        phase: ``validation`` or ``test``.

    Returns:
        One row per id in file order; columns: the id column (object str, or int64 for ``int`` ids), every
        ``reference_targets`` column parsed as :func:`~harness.scoring.kinds.truth_columns` says (a label's with
        the label column's dtype, int64 or object str; a probability group's target with its classes' dtype; a
        quantile group's target float64; other columns with their spec dtype), and the split column (object
        str). Other columns in the file are kept as strings after these.

    Raises:
        EvaluatorError: the file is missing or lacks a column, has duplicate ids, a non-numeric or missing
            target, a label outside the allowed values or a class the probability group does not list, or a split
            the spec does not declare. These are task problems, not the team's.
        ValueError: ``phase`` is not a phase of the spec.
    """
    if phase not in spec.data.references:
        raise ValueError(f"unknown phase {phase!r}; expected one of {list(spec.data.references)}")
    path = spec.reference_path(phase)
    if not path.is_file():
        raise EvaluatorError(
            f"the {phase} reference {path} does not exist; run `harness task prepare {spec.task_dir}` first"
        )
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
    except (ValueError, OSError, UnicodeError) as exc:
        raise EvaluatorError(f"cannot read the {phase} reference {path}: {exc}") from None
    pspec = spec.predictions
    needed = [pspec.id_column, *pspec.reference_targets, spec.data.split_column]
    absent = [c for c in needed if c not in frame.columns]
    if absent:
        raise EvaluatorError(f"the {phase} reference {path} lacks column(s) {absent}; it needs {needed}")
    ids = frame[pspec.id_column]
    id_dtype = next(c.dtype for c in pspec.columns if c.name == pspec.id_column)
    out: dict[str, Any] = {pspec.id_column: ids.astype("int64") if id_dtype == "int" else ids.astype(object)}
    if ids.duplicated().any():
        raise EvaluatorError(f"the {phase} reference {path} has duplicate ids, first: {ids[ids.duplicated()].iloc[0]}")
    for target, column in truth_columns(pspec).items():
        values, problems = parse_column(column, frame[target], ids, path.name)
        if problems:
            raise EvaluatorError(f"the {phase} reference {path} is malformed: {'; '.join(problems)}")
        out[target] = values
    for group in pspec.probabilities:  # also when a label column's truth decided the target's parsing
        truth = pd.Series(out[group.target])
        unlisted = (~truth.isin(class_values(group))).to_numpy()
        if unlisted.any():
            raise EvaluatorError(
                f"the {phase} reference {path} holds class {truth[unlisted].iloc[0]!r} in {group.target!r} at id "
                f"{ids[unlisted].iloc[0]}, which the probabilities for {group.target!r} do not list "
                f"({list(group.classes)}); add it to classes or fix the reference"
            )
    split = frame[spec.data.split_column].astype(object)
    unknown = sorted(set(split) - set(spec.splits(phase)))
    if unknown:
        raise EvaluatorError(
            f"the {phase} reference {path} has split(s) {unknown} that data.splits.{phase} "
            f"({list(spec.splits(phase))}) does not declare"
        )
    out[spec.data.split_column] = split
    for col in frame.columns:
        if col not in out:
            out[col] = frame[col]
    return pd.DataFrame(out)
