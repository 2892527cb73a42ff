"""The review page's tables per task kind: classification (confusion matrix, per-class precision and recall,
reliability of probabilities) and forecasts (coverage of quantile intervals).

Each function reads the errors table of :func:`harness.report.analysis.prediction_errors` and one
:class:`~harness.report.analysis.ReviewTarget`; rows without a prediction are left out (they are counted as
``missing`` by :func:`~harness.report.analysis.errors_by_group`). Regression needs nothing here: its errors per
group are :func:`~harness.report.analysis.errors_by_group`'s. The metrics are scikit-learn's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.report.analysis import ReviewTarget

__all__ = ["TOP_CLASS", "class_scores_table", "confusion_table", "interval_coverage", "reliability_table"]

#: The ``curve`` of :func:`reliability_table` for the most probable class of each row.
TOP_CLASS = "top class"


def _need(target: ReviewTarget, *kinds: str) -> None:
    if target.kind not in kinds:
        raise ValueError(f"{target.name!r} is a {target.kind} target; this table needs one of {', '.join(kinds)}")


def _predicted_rows(errors: pd.DataFrame, target: ReviewTarget) -> pd.DataFrame:
    rows = errors[errors[f"{target.name}_pred"].notna() & errors[f"{target.name}_true"].notna()]
    return rows


def _labelled(errors: pd.DataFrame, target: ReviewTarget) -> tuple[pd.DataFrame, list[str], np.ndarray, np.ndarray]:
    """The rows with a prediction of a label or probability target, its classes, and the true and predicted
    classes as text arrays. Raises ValueError for another kind of target."""
    _need(target, "label", "probabilities")
    rows = _predicted_rows(errors, target)
    true = rows[f"{target.name}_true"].astype(str).to_numpy()
    pred = rows[f"{target.name}_pred"].astype(str).to_numpy()
    return rows, list(target.classes), true, pred


def confusion_table(errors: pd.DataFrame, target: ReviewTarget) -> pd.DataFrame:
    """Counts of (true class, predicted class) over the rows with a prediction (:func:`sklearn.metrics.
    confusion_matrix`); for probabilities the predicted class is the most probable one.

    Returns:
        One row per true class and one column per predicted class, both in the spec's class order (index named
        ``true``, columns named ``predicted``; int64 counts). Truths outside the declared classes are not counted.

    Raises:
        ValueError: ``target`` is not a label or probability target.
    """
    from sklearn.metrics import confusion_matrix

    _, classes, true, pred = _labelled(errors, target)
    if np.isin(true, classes).any():
        counts = confusion_matrix(true, pred, labels=classes)
    else:  # scikit-learn refuses labels none of which is in y_true
        counts = np.zeros((len(classes), len(classes)), dtype="int64")
    table = pd.DataFrame(counts.astype("int64"), index=pd.Index(classes, name="true"), columns=classes)
    table.columns.name = "predicted"
    return table


def class_scores_table(errors: pd.DataFrame, target: ReviewTarget) -> pd.DataFrame:
    """Precision, recall and F1 of each class over the rows with a prediction
    (:func:`sklearn.metrics.precision_recall_fscore_support`, a class never predicted has precision 0).

    Returns:
        One row per class in spec order. Columns: ``class`` (string), ``support`` (int64, rows of that true
        class), ``predicted`` (int64, rows predicted as it), ``precision``, ``recall``, ``f1`` (float64 in [0, 1]).

    Raises:
        ValueError: ``target`` is not a label or probability target.
    """
    from sklearn.metrics import precision_recall_fscore_support

    rows, classes, true, pred = _labelled(errors, target)
    if len(rows):
        precision, recall, f1, support = precision_recall_fscore_support(true, pred, labels=classes, zero_division=0.0)
    else:
        precision = recall = f1 = np.zeros(len(classes))
        support = np.zeros(len(classes), dtype="int64")
    return pd.DataFrame(
        {
            "class": pd.array(classes, dtype="string"),
            "support": np.asarray(support, dtype="int64"),
            "predicted": np.array([(pred == c).sum() for c in classes], dtype="int64"),
            "precision": np.asarray(precision, dtype="float64"),
            "recall": np.asarray(recall, dtype="float64"),
            "f1": np.asarray(f1, dtype="float64"),
        }
    )


def _curve(name: str, hit: np.ndarray, prob: np.ndarray, n_bins: int) -> pd.DataFrame:
    from sklearn.calibration import calibration_curve

    observed, mean_predicted = calibration_curve(hit, prob, n_bins=n_bins, strategy="uniform", pos_label=1)
    # The same bins as scikit-learn's (uniform edges, searchsorted on the inner ones), to count the rows in each.
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    counts = np.bincount(np.searchsorted(edges[1:-1], prob), minlength=n_bins)
    filled = np.flatnonzero(counts)
    return pd.DataFrame(
        {
            "curve": pd.array([name] * len(filled), dtype="string"),
            "bin_low": edges[filled],
            "bin_high": edges[filled + 1],
            "mean_predicted": mean_predicted.astype("float64"),
            "observed": observed.astype("float64"),
            "rows": counts[filled].astype("int64"),
        }
    )


def reliability_table(
    errors: pd.DataFrame, target: ReviewTarget, *, n_bins: int = 10, per_class: bool = True
) -> pd.DataFrame:
    """Reliability (calibration) of a probability group: per bin of predicted probability, the observed frequency
    (:func:`sklearn.calibration.calibration_curve`, ``n_bins`` uniform bins over [0, 1]).

    Curves: :data:`TOP_CLASS` (the highest probability of each row against "that class is the true one"), then,
    with ``per_class``, one per class one-vs-rest (``p_<class>`` against "the truth is that class"). Rows whose
    truth is no declared class are left out.

    Returns:
        Long format, empty bins left out. Columns: ``curve`` (string: :data:`TOP_CLASS` or the class),
        ``bin_low``, ``bin_high`` (float64, the bin's edges), ``mean_predicted`` (float64, mean probability in the
        bin), ``observed`` (float64, share of hits), ``rows`` (int64).

    Raises:
        ValueError: ``target`` is not a probability group, or ``n_bins`` < 1.
    """
    _need(target, "probabilities")
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    rows = _predicted_rows(errors, target)
    rows = rows[rows[f"{target.name}_true"].isin(list(target.classes))]
    probs = rows[list(target.columns)].to_numpy(dtype="float64").clip(0.0, 1.0)
    true = rows[f"{target.name}_true"].astype(str).to_numpy()
    parts = []
    if len(rows):
        classes = np.asarray(target.classes, dtype=object)
        top = probs.argmax(axis=1)
        parts.append(_curve(TOP_CLASS, (classes[top] == true).astype(int), probs.max(axis=1), n_bins))
        if per_class:
            for index, name in enumerate(target.classes):
                parts.append(_curve(name, (true == name).astype(int), probs[:, index], n_bins))
    if not parts:
        return _curve(TOP_CLASS, np.zeros(0, dtype=int), np.zeros(0), n_bins)
    return pd.concat(parts, ignore_index=True)


def interval_coverage(errors: pd.DataFrame, target: ReviewTarget, by: str | None = None) -> pd.DataFrame:
    """Coverage of each central quantile interval: the observed share of truths inside ``[q_lo, q_hi]`` (bounds
    included) against the nominal level ``hi - lo``, over the rows with a forecast.

    Args:
        errors: output of :func:`~harness.report.analysis.prediction_errors`.
        target: a quantile target; its central intervals pair levels summing to 1 (0.1 with 0.9).
        by: a column of ``errors`` (the horizon) to give the coverage per value of, or ``None``.

    Returns:
        One row per interval, widest first (per ``by`` value, sorted, when given: ``by`` is then the first column).
        Columns: ``interval`` (string, ``q10-q90``), ``lower_level``, ``upper_level``, ``nominal`` (float64),
        ``observed`` (float64, share inside), ``below``, ``above`` (float64, shares under the lower and over the
        upper bound), ``rows`` (int64). No row when the levels hold no central interval.

    Raises:
        ValueError: ``target`` is not a quantile group.
        KeyError: ``by`` is not a column of ``errors``.
    """
    _need(target, "quantiles")
    if by is not None and by not in errors.columns:
        raise KeyError(f"no column {by!r} to give coverage by; columns: {list(errors.columns)}")
    rows = errors[errors[list(target.columns)].notna().all(axis=1) & errors[f"{target.name}_true"].notna()]
    chunks = [(None, rows)] if by is None else list(rows.groupby(by, sort=True, dropna=False))
    records = []
    for key, chunk in chunks:
        truth = chunk[f"{target.name}_true"].to_numpy(dtype="float64")
        for lo, hi in target.central_intervals:
            low = chunk[target.columns[lo]].to_numpy(dtype="float64")
            high = chunk[target.columns[hi]].to_numpy(dtype="float64")
            n = len(chunk)
            record = {} if by is None else {by: key}
            record |= {
                "interval": f"{target.columns[lo]}-{target.columns[hi]}",
                "lower_level": target.levels[lo],
                "upper_level": target.levels[hi],
                "nominal": round(target.levels[hi] - target.levels[lo], 12),
                "observed": float(((low <= truth) & (truth <= high)).mean()) if n else np.nan,
                "below": float((truth < low).mean()) if n else np.nan,
                "above": float((truth > high).mean()) if n else np.nan,
                "rows": n,
            }
            records.append(record)
    columns = [*([by] if by else []), "interval", "lower_level", "upper_level", "nominal", "observed"]
    out = pd.DataFrame.from_records(records, columns=[*columns, "below", "above", "rows"])
    out["interval"] = out["interval"].astype("string")
    for column in ("lower_level", "upper_level", "nominal", "observed", "below", "above"):
        out[column] = out[column].astype("float64")
    out["rows"] = out["rows"].astype("int64")
    return out
