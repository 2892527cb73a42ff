"""The tables the report notebooks show, and their machine-readable copies.

* :func:`glue_table` / :func:`read_glued`: a table displayed in a notebook with a copy of its exact values that tests
  and other tools read back from the executed notebook (:func:`table_records` is that copy);
* :func:`style_metric_table`: the metric table as a pandas Styler, best value per metric marked, values shown at the
  spec's precision, every string made visible (:func:`harness.text.visible`) and HTML-escaped (team names, reasons
  and logs are written by teams);
* :func:`plain_table` for any other table, :func:`runs_by_split_table` for one team's runs, :func:`plain_label` for
  text in plots.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from harness.report.errors import ReportError
from harness.spec import MetricSpec
from harness.status import Status
from harness.store import ScoredRun
from harness.text import visible

if TYPE_CHECKING:
    from pandas.io.formats.style import Styler

__all__ = [
    "GLUE_KEY",
    "GLUE_MIME",
    "glue_table",
    "plain_label",
    "plain_table",
    "read_glued",
    "runs_by_split_table",
    "style_metric_table",
    "table_records",
]

#: Key under an output's metadata that names a glued table (see :func:`glue_table`).
GLUE_KEY = "harness_report"
#: MIME type of a glued table's exact records.
GLUE_MIME = "application/json"


def _json_value(value: Any) -> Any:
    """A JSON-safe, exact copy of one cell value: floats stay floats (NaN -> None), timestamps -> ISO 8601."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def table_records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """A DataFrame as a list of row dicts that JSON round-trips exactly.

    Floats keep every bit (``json`` writes ``repr``), NaN/NA/NaT become ``None``, timestamps ISO 8601 strings,
    numpy scalars Python scalars. Two tables are equal cell by cell iff their records are equal.
    """
    columns = [str(c) for c in df.columns]
    return [
        {column: _json_value(value) for column, value in zip(columns, row, strict=True)}
        for row in df.itertuples(index=False, name=None)
    ]


def glue_table(name: str, df: pd.DataFrame, *, summary: str = "") -> None:
    """Display a table's exact records in a notebook output that :func:`read_glued` finds by ``name``.

    Call it from a cell tagged ``remove_cell`` so the HTML export leaves it out. The output carries
    ``application/json`` (the records of :func:`table_records`) and a short ``text/plain`` summary, and its
    metadata ``{"harness_report": {"name": name}}``.
    """
    from IPython.display import display

    text = summary or f"{name}: {len(df)} rows x {df.shape[1]} columns (machine-readable copy)"
    bundle = {
        GLUE_MIME: {"name": name, "columns": [str(c) for c in df.columns], "records": table_records(df)},
        "text/plain": text,
    }
    display(bundle, raw=True, metadata={GLUE_KEY: {"name": name}})


def read_glued(notebook: str | Path, name: str) -> list[dict[str, Any]]:
    """The records a notebook glued under ``name`` (see :func:`glue_table`).

    Raises:
        ReportError: the notebook holds no such output.
    """
    import nbformat

    nb = nbformat.read(str(notebook), as_version=4)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            tag = output.get("metadata", {}).get(GLUE_KEY, {})
            if isinstance(tag, dict) and tag.get("name") == name and GLUE_MIME in output.get("data", {}):
                return list(output["data"][GLUE_MIME]["records"])
    raise ReportError(f"{notebook} holds no glued table named {name!r}", str(notebook))


def plain_label(text: str) -> str:
    """A string matplotlib shows literally: control and format characters made visible (one line), ``$`` escaped
    (it would start mathtext)."""
    return visible(str(text), keep="").replace("$", r"\$")


def _text_columns(df: pd.DataFrame) -> list[Any]:
    return [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c])]


def plain_table(df: pd.DataFrame, *, precision: int = 3, formats: dict[str, str] | None = None) -> Styler:
    """A table for a report: strings made visible and HTML-escaped, left-aligned; numbers right-aligned; no index.

    Args:
        df: any table; its strings may be team-written: control and bidirectional characters in them are shown
            as escapes (:func:`harness.text.visible`; newlines and tabs kept), then HTML-escaped.
        precision: decimals of float columns without an entry in ``formats``.
        formats: column -> format string (``"{:.1f}"``) for particular columns.

    Returns:
        A Styler; timestamps are shown as ``YYYY-MM-DD HH:MM UTC``, missing values as empty cells.
    """
    shown = df.reset_index(drop=True).copy()
    for column in shown.columns:
        if isinstance(shown[column].dtype, pd.DatetimeTZDtype):
            shown[column] = shown[column].dt.strftime("%Y-%m-%d %H:%M UTC")
        elif pd.api.types.is_object_dtype(shown[column]) or pd.api.types.is_string_dtype(shown[column]):
            shown[column] = shown[column].map(lambda v: visible(v) if isinstance(v, str) else v)
    styler = shown.style.format(precision=precision, na_rep="", escape="html")
    for column, fmt in (formats or {}).items():
        if column in shown:
            styler = styler.format(fmt, subset=[column], na_rep="")
    text = _text_columns(shown)
    if text:
        styler = styler.set_properties(subset=text, **{"text-align": "left"})
        styler = styler.set_table_styles(
            [{"selector": f"th.col_heading.col{shown.columns.get_loc(c)}", "props": "text-align: left"} for c in text],
            overwrite=False,
        )
    return styler.hide(axis="index")


def style_metric_table(df: pd.DataFrame, metrics: Sequence[MetricSpec]) -> Styler:
    """The metric table for judges' eyes: best value per metric marked, spec precision, strings HTML-escaped.

    Args:
        df: a metric table (:func:`harness.ranking.metric_table`), one row per team or per run.
        metrics: the spec's metrics; each column is shown with ``precision`` decimals and its best value among
            ``succeeded`` rows (minimum or maximum by ``goal``) is marked in bold on green. Rows that did not
            succeed are greyed.

    Returns:
        A Styler over :func:`harness.ranking.display_table`'s columns, index hidden.
    """
    from harness.ranking import display_table

    shown = display_table(df, metrics).reset_index(drop=True)
    shown["submitted_at"] = pd.to_datetime(shown["submitted_at"], utc=True).dt.strftime("%Y-%m-%d %H:%M UTC")
    succeeded = (shown["status"] == Status.SUCCEEDED).to_numpy(dtype=bool)

    def mark_best(column: pd.Series) -> list[str]:
        metric = next(m for m in metrics if m.name == column.name)
        values = pd.to_numeric(column, errors="coerce").to_numpy(dtype="float64")
        valid = succeeded & np.isfinite(values)
        if not valid.any():
            return [""] * len(column)
        best = values[valid].min() if metric.goal == "minimize" else values[valid].max()
        return [
            "font-weight: bold; background-color: #c8e6c9" if ok and v == best else ""
            for ok, v in zip(valid, values, strict=True)
        ]

    def grey_failures(row: pd.Series) -> list[str]:
        return [""] * len(row) if row["status"] == Status.SUCCEEDED else ["color: #8a8a8a"] * len(row)

    metric_columns = [m.name for m in metrics if m.name in shown]
    formats = {m.name: f"{{:.{m.precision}f}}" for m in metrics} | {"duration_s": "{:.1f}", "peak_memory_mb": "{:.0f}"}
    styler = plain_table(shown, formats=formats).apply(grey_failures, axis=1)
    if metric_columns:
        styler = styler.apply(mark_best, axis=0, subset=metric_columns)
    labels = {m.name: m.display_name for m in metrics if m.name in shown}
    return styler.relabel_index([labels.get(str(c), str(c)) for c in shown.columns], axis="columns")


def runs_by_split_table(
    runs: Sequence[ScoredRun], metrics: Sequence[MetricSpec], splits: Sequence[str]
) -> pd.DataFrame:
    """One row per run (active or not) with every metric on every split, for one team's review.

    Returns:
        Rows in the given order. Columns: ``run_id`` (int64), ``submitted_at`` (datetime64[ns, UTC]),
        ``submission`` (first 12 hex digits of the content hash), ``status``, ``reason`` (object), ``active``
        (bool), then ``"<metric> (<split>)"`` (float64, NaN when not scored) for each split and metric, then
        ``duration_s`` and ``peak_memory_mb`` (float64, NaN when unknown).
    """
    metric_columns = [f"{m.name} ({s})" for s in splits for m in metrics]
    rows = []
    for run in runs:
        row: dict[str, Any] = {
            "run_id": run.run_id,
            "submitted_at": pd.Timestamp(run.submitted_at),
            "submission": run.content_hash[:12],
            "status": run.status,
            "reason": run.reason,
            "active": bool(run.active),
        }
        for split in splits:
            scores = run.scores.get(split, {})
            for metric in metrics:
                row[f"{metric.name} ({split})"] = float(scores.get(metric.name, math.nan))
        row["duration_s"] = float(run.duration_s) if run.duration_s is not None else math.nan
        row["peak_memory_mb"] = float(run.peak_memory_mb) if run.peak_memory_mb is not None else math.nan
        rows.append(row)
    columns = [
        "run_id",
        "submitted_at",
        "submission",
        "status",
        "reason",
        "active",
        *metric_columns,
        "duration_s",
        "peak_memory_mb",
    ]
    df = pd.DataFrame(rows, columns=columns)
    df["run_id"] = df["run_id"].astype("int64")
    df["submitted_at"] = pd.to_datetime(df["submitted_at"], utc=True).astype("datetime64[ns, UTC]")
    df["active"] = df["active"].astype("bool")
    for column in [*metric_columns, "duration_s", "peak_memory_mb"]:
        df[column] = df[column].astype("float64")
    return df
