"""Metric tables and leaderboards (pandas).

The rules, in one place:

* **Which run counts per team** (``selection`` in the spec's ``leaderboard``): ``best`` takes the team's best
  *valid* run by the public split's metrics (so the private ranking cannot be used to pick a submission), and a
  team without any valid run shows its latest run with status and reason; ``latest`` takes the team's latest
  submission, valid or not.
* **Valid** means status ``succeeded`` and a finite value of the primary metric on the split shown. Failed,
  invalid and NaN results never rank above a valid one, whatever the metric's direction: they get no rank
  (``<NA>``) and are listed after every ranked row.
* **Ranks** are standard competition ranks (1, 2, 2, 4) over the metrics in the spec's order: the primary metric
  decides, the next metric breaks its ties, and so on (each in its own direction; a missing secondary value sorts
  last). Rows equal on every metric share a rank and are listed earlier submission first.
"""

from __future__ import annotations

import html
import json
import logging
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from harness.errors import HarnessError
from harness.provenance import Staleness
from harness.spec import MetricSpec, TaskSpec
from harness.status import Status
from harness.store.reading import RunSource, ScoredRun
from harness.text import spreadsheet_safe, visible

log = logging.getLogger(__name__)

__all__ = [
    "METRIC_TABLE_COLUMNS",
    "export",
    "leaderboard",
    "leaderboard_and_stale",
    "metric_table",
    "rank_table",
    "runs_table",
]

#: Fixed columns of a metric table, with their pandas dtypes; one float64 column per metric follows ``reason``.
METRIC_TABLE_COLUMNS: dict[str, str] = {
    "rank": "Int64",  # competition rank; <NA> for rows that are not valid
    "team": "string",
    "submission": "string",  # first 12 hex digits of the submission's content hash
    "submitted_at": "datetime64[ns, UTC]",
    "status": "string",
    "reason": "string",
    "duration_s": "float64",
    "peak_memory_mb": "float64",
    "identical_to": "string",  # other teams whose submission has the same content hash ("" if none)
    "run_id": "Int64",
    "stale": "string",  # what changed since the run was scored ("" when current; see harness.provenance)
    "inputs": "object",  # the hashes of what produced the scores (provenance["inputs"]: a dict, or None)
}

Selection = Literal["best", "latest"]


@dataclass(frozen=True)
class _Metric:
    name: str
    ascending: bool


def _metrics(metrics: Sequence[MetricSpec]) -> list[_Metric]:
    return [_Metric(m.name, m.goal == "minimize") for m in metrics]


def _sort_key(row: pd.Series | Mapping[str, Any], metrics: Sequence[_Metric]) -> tuple[float, ...]:
    """Sort key over the metrics: smaller is better; NaN/None last."""
    key: list[float] = []
    for metric in metrics:
        value = row.get(metric.name)
        if type(value) is float:  # the common case, without pandas' scalar check (NaN and infinities: last)
            key.append((value if metric.ascending else -value) if math.isfinite(value) else math.inf)
        elif value is None or pd.isna(value) or not math.isfinite(float(value)):
            key.append(math.inf)
        else:
            key.append(float(value) if metric.ascending else -float(value))
    return tuple(key)


def rank_table(table: pd.DataFrame, metrics: Sequence[MetricSpec]) -> pd.DataFrame:
    """Rank rows of a metric table and order them for display.

    Args:
        table: one row per entry with at least ``status``, ``submitted_at`` and one float column per metric.
        metrics: the spec's metrics, primary first is not required (the ``primary`` flag decides).

    Returns:
        A new frame ordered ranked-first with an ``Int64`` ``rank`` column as described in the module docstring.
    """
    ordered = sorted(metrics, key=lambda m: not m.primary)
    specs = _metrics(ordered)
    primary = specs[0].name
    df = table.copy().reset_index(drop=True)
    primary_values = pd.to_numeric(df[primary], errors="coerce") if primary in df else pd.Series(np.nan, index=df.index)
    valid = (df["status"] == Status.SUCCEEDED) & np.isfinite(primary_values.astype("float64"))
    keys = [_sort_key(row, specs) for row in df.reindex(columns=[m.name for m in specs]).to_dict("records")]
    df["_key"] = keys
    df["_valid"] = valid
    ranked = df[df["_valid"]].copy()
    ranked = ranked.sort_values(by=["_key", "submitted_at"], kind="mergesort")
    ranks: list[int] = []
    previous = None
    for position, key in enumerate(ranked["_key"], start=1):
        ranks.append(ranks[-1] if key == previous else position)
        previous = key
    ranked["rank"] = pd.array(ranks, dtype="Int64")
    rest = df[~df["_valid"]].copy()
    rest = rest.sort_values(by=["status", "team", "submitted_at"], kind="mergesort")
    rest["rank"] = pd.array([pd.NA] * len(rest), dtype="Int64")
    out = pd.concat([ranked, rest], ignore_index=True).drop(columns=["_key", "_valid"])
    return out


def runs_table(
    runs: Iterable[ScoredRun],
    metrics: Sequence[MetricSpec],
    *,
    split: str,
    among: Sequence[ScoredRun] | None = None,
    stale: Mapping[int, str] | None = None,
) -> pd.DataFrame:
    """One row per run with the fixed columns (:data:`METRIC_TABLE_COLUMNS`, rank left empty) and the metrics.

    Metric values come from ``split``; a run without a value there has NaN. Columns: the fixed ones, then one
    float64 column per metric in the spec's order. ``identical_to`` names the other teams with the same content
    among ``among`` (default: ``runs``); ``stale`` maps run id -> the ``stale`` cell (default ``""``).
    """
    runs = list(runs)
    by_hash: dict[str, set[str]] = defaultdict(set)
    for run in runs if among is None else among:
        if run.content_hash and run.kind != "unknown":
            by_hash[run.content_hash].add(run.team)
    stale = stale or {}
    rows = []
    for run in runs:
        same = sorted(by_hash.get(run.content_hash, set()) - {run.team}) if run.kind != "unknown" else []
        row: dict[str, object] = {
            "rank": pd.NA,
            "team": run.team,
            "submission": run.content_hash[:12],
            "submitted_at": pd.Timestamp(run.submitted_at),
            "status": run.status,
            "reason": run.reason,
            "duration_s": run.duration_s if run.duration_s is not None else np.nan,
            "peak_memory_mb": run.peak_memory_mb if run.peak_memory_mb is not None else np.nan,
            "identical_to": ", ".join(same),
            "run_id": run.run_id,
            "stale": stale.get(run.run_id, ""),
            "inputs": run.provenance.get("inputs"),
        }
        split_scores = run.scores.get(split, {})
        for metric in metrics:
            row[metric.name] = float(split_scores[metric.name]) if metric.name in split_scores else np.nan
        rows.append(row)
    columns = list(METRIC_TABLE_COLUMNS) + [m.name for m in metrics]
    df = pd.DataFrame(rows, columns=columns)
    for column, dtype in METRIC_TABLE_COLUMNS.items():
        if column == "submitted_at":
            df[column] = pd.to_datetime(df[column], utc=True).astype(dtype)
        else:
            df[column] = df[column].astype(dtype)
    for metric in metrics:
        df[metric.name] = df[metric.name].astype("float64")
    return df[[*METRIC_TABLE_COLUMNS, *(m.name for m in metrics)]]


def _select(runs: Sequence[ScoredRun], metrics: Sequence[MetricSpec], selection: Selection) -> list[ScoredRun]:
    """One run per team according to the selection rule (see the module docstring), in the order of ``runs``."""
    primary_first = _metrics(sorted(metrics, key=lambda m: not m.primary))
    latest: dict[str, tuple[Any, int]] = {}
    best: dict[str, tuple[tuple[float, ...], Any, int]] = {}
    for run in runs:  # plain Python per run: a pandas group per team took seconds for 10,000 runs
        team, run_id, submitted_at = run.team, run.run_id, run.submitted_at
        if team not in latest or (submitted_at, run_id) > latest[team]:
            latest[team] = (submitted_at, run_id)
        scores = run.scores.get("public", {})
        primary_value = scores.get(primary_first[0].name)
        if run.status == Status.SUCCEEDED and primary_value is not None and math.isfinite(primary_value):
            candidate = (_sort_key(scores, primary_first), submitted_at, run_id)
            if team not in best or candidate < best[team]:
                best[team] = candidate
    chosen = {
        latest[team][1] if selection == "latest" or team not in best else best[team][2] for team in sorted(latest)
    }
    return [run for run in runs if run.run_id in chosen]


def _absent(value: float | None) -> bool:
    """Whether a score is missing (no value, or NaN), as a table's NaN cell would say."""
    return value is None or math.isnan(value)


def metric_table(
    spec: TaskSpec | None,
    store: RunSource,
    *,
    task_id: str | None = None,
    metrics: Sequence[MetricSpec] | None = None,
    split: str = "public",
    per_team: bool = True,
    selection: Selection | None = None,
    phase: str = "test",
    runs: Sequence[ScoredRun] | None = None,
    stale: Sequence[Staleness] | None = None,
) -> pd.DataFrame:
    """The metric table of a task from the store.

    Args:
        spec: the task spec (gives metrics and selection); may be None if ``task_id`` and ``metrics`` are given.
        store: results store.
        task_id: defaults to ``spec.id``.
        metrics: defaults to ``spec.metrics``.
        split: ``public`` or ``private`` (test phase) or ``validation``.
        per_team: one row per team (the leaderboard) or one row per active run.
        selection: ``best`` or ``latest``; defaults to the spec's rule, else ``best``.
        phase: ``test`` (judging) or ``validation``.
        runs: the task's active runs of ``phase`` already read (``store.runs(task, phase=phase)``), so callers
            that need them too read them once; default: read here.
        stale: :func:`harness.provenance.check_runs` of ``runs`` already made (with ``spec``); default: made here.

    Returns:
        A ranked DataFrame: columns :data:`METRIC_TABLE_COLUMNS` then one float64 column per metric.

    Raises:
        HarnessError: the store has no results for the task (the message says which command produces them).
    """
    task = task_id or (spec.id if spec else None)
    if task is None:
        raise ValueError("give a spec or a task_id")
    metric_specs = list(metrics or (spec.metrics if spec else ()))
    if not metric_specs:
        raise ValueError("give a spec or the metrics")
    rule: Selection = selection or (spec.leaderboard.selection if spec else "best")
    runs = list(store.runs(task, phase=phase) if runs is None else runs)
    if not runs:
        known = store.task_ids()
        unfinished = len(store.runs(task, phase=phase, active_only=False)) if task in known else 0
        if unfinished:
            raise HarnessError(
                f"no finished results for task {task!r} yet: {unfinished} run(s) were interrupted or are still "
                "running. Run `harness run TASK_DIR SUBMISSIONS_DIR` again (with the same --home/--db) to finish them."
            )
        hint = f"; tasks in this store: {', '.join(known)}" if known else ""
        raise HarnessError(
            f"no results for task {task!r} in the store at {store._safe_url()}{hint}. "
            "Run `harness run TASK_DIR SUBMISSIONS_DIR` first (with the same --home/--db)."
        )
    described: dict[int, str] = {}
    if spec is not None:
        if stale is None:
            from harness.provenance import check_runs

            stale = check_runs(spec, runs, phase=phase)
        said = {item: item.describe() for item in set(stale)}  # a few distinct ones among 10,000 runs
        described = {run.run_id: said[item] for run, item in zip(runs, stale, strict=True)}
    scored = [run.scores.get(split, {}) for run in runs if run.status == Status.SUCCEEDED]
    missing = [m.name for m in metric_specs if scored and all(_absent(s.get(m.name)) for s in scored)]
    if missing:
        log.warning(
            "no run of task %s has a value of metric(s) %s on split %s: the spec's metrics differ from the ones the "
            "runs were scored with (re-run with --rerun to score them again)",
            task,
            ", ".join(missing),
            split,
        )
    shown = _select(runs, metric_specs, rule) if per_team else runs
    df = runs_table(shown, metric_specs, split=split, among=runs, stale=described)
    return rank_table(df, metric_specs)


def leaderboard(
    task: str | Path | TaskSpec,
    *,
    store: RunSource | None = None,
    db_url: str | None = None,
    home: Path | None = None,
    split: str = "public",
    selection: Selection | None = None,
    similar: bool = False,
    intervals: bool = False,
) -> pd.DataFrame:
    """The leaderboard of a task: one ranked row per team (see :func:`metric_table` for the columns).

    Args:
        task: a task folder, a loaded spec, or a task id known to the store (the id form finds the spec under
            ``task_specs/<id>`` of the current folder if present, for metric directions and precision).
        store: an open store; else one is opened from ``db_url``/``home`` (see :func:`harness.store.resolve_db_url`).
        split: ``public`` or ``private``.
        similar: judges only: add a ``similar_to`` string column after ``identical_to``, the most similar other
            team over the spec's similarity thresholds (:func:`harness.similarity.find_similar`: reads every
            team's code and kept predictions, so it takes seconds to minutes).
        selection: override the spec's ``best``/``latest`` rule (on the public board under
            ``leaderboard.public_rule: ladder`` the Ladder picks each team's shown run instead).
        intervals: add paired bootstrap intervals, rank ranges and tie groups
            (:func:`harness.ranking_intervals.add_intervals`; reads every ranked team's kept predictions).

    Raises:
        SpecError: the task cannot be found.
        HarnessError: no results yet.
    """
    return leaderboard_and_stale(
        task, store=store, db_url=db_url, home=home, split=split, selection=selection, similar=similar,
        intervals=intervals,
    )[0]  # fmt: skip


def leaderboard_and_stale(
    task: str | Path | TaskSpec,
    *,
    store: RunSource | None = None,
    db_url: str | None = None,
    home: Path | None = None,
    split: str = "public",
    selection: Selection | None = None,
    similar: bool = False,
    intervals: bool = False,
    read: list[Path] | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """:func:`leaderboard` and :func:`harness.provenance.stale_report` of its task's active test runs, from one
    read of the runs and one hashing of the task's inputs (what ``harness leaderboard`` prints).

    Args:
        read: when given, the files and folders the board was computed from are appended to it
            (:func:`harness.board_snapshot.board_files`; not those ``similar`` reads); the other arguments and
            the errors are :func:`leaderboard`'s.

    Returns:
        ``(table, stale lines)``.
    """
    from harness.provenance import check_runs, stale_report

    spec = resolve_task(task)
    own = store is None
    store = store or _open_store(db_url, home)
    try:
        runs = store.runs(spec.id, phase="test")  # read once: every part below works on this list
        stale = check_runs(spec, runs, phase="test") if runs else []
        table = metric_table(spec, store, split=split, selection=selection, runs=runs, stale=stale)
        if split == "public" and spec.leaderboard.public_rule == "ladder":  # Blum & Hardt 2015 (harness.ladder)
            from harness.ladder import ladder_table

            every = metric_table(spec, store, split=split, per_team=False, runs=runs, stale=stale)
            table = ladder_table(spec, store, table, every)
        if intervals:
            from harness.ranking_intervals import add_intervals

            table = add_intervals(table, spec, store, split=split, runs=runs)
        if similar:
            from harness.similarity import find_similar, with_similar_column

            table = with_similar_column(table, find_similar(spec, runs, home=home, run_ids=table["run_id"]))
        lines = stale_report(spec, store, runs=runs, stale=stale)
        if read is not None:
            from harness.board_snapshot import board_files

            kept = intervals or (split == "public" and spec.leaderboard.public_rule == "ladder")
            url = store.url  # the store read here (given, or opened above): not resolved a second time
            store_dir = Path(url.removeprefix("sqlite:///")).parent if url.startswith("sqlite:///") else None
            read += board_files(spec, runs, kept=kept, store_dir=store_dir)
        return table, lines
    finally:
        if own:
            store.close()


def _open_store(db_url: str | None, home: Path | None) -> RunSource:
    """The store to read a board from: a :class:`~harness.store.reading.SQLiteReader` when the store is a SQLite
    file of this schema (no SQLAlchemy imported, no ORM row made), else a :class:`~harness.store.Store` (which
    makes a new store's tables, or says what is wrong with the URL or the store)."""
    from harness.store.reading import open_reader, resolve_db_url

    url = resolve_db_url(db_url, home)
    reader = open_reader(url)
    if reader is not None:
        return reader
    from harness.store import Store

    return Store(url)


def resolve_task(task: str | Path | TaskSpec) -> TaskSpec:
    """A spec from a spec, a task folder, or a task id (looked up as ``task_specs/<id>`` here or ``$HARNESS_TASKS``).

    Raises:
        SpecError: nothing matches (the message lists where it looked).
    """
    from harness.errors import SpecError
    from harness.settings import get_settings
    from harness.spec import load_spec

    if isinstance(task, TaskSpec):
        return task
    path = Path(task)
    if (path / "task.yaml").is_file() or path.name == "task.yaml":
        return load_spec(path)
    tasks = get_settings().tasks
    roots = [tasks] if tasks is not None else []
    roots.append(Path("task_specs"))
    for root in roots:
        if (root / str(task) / "task.yaml").is_file():
            return load_spec(root / str(task))
    raise SpecError(
        f"no task {str(task)!r}: give a task folder (holding task.yaml) or a task id found under "
        f"{' or '.join(str(r) for r in roots)} (set $HARNESS_TASKS to another folder of tasks)"
    )


def display_table(df: pd.DataFrame, metrics: Sequence[MetricSpec]) -> pd.DataFrame:
    """The columns judges read first, metric values rounded to the spec's precision (a copy)."""
    out = df.copy()
    for metric in metrics:
        if metric.name in out:
            out[metric.name] = out[metric.name].round(metric.precision)
    columns = [
        "rank",
        "team",
        *[m.name for m in metrics],
        "status",
        "stale",
        "reason",
        "submission",
        "identical_to",
        "similar_to",  # only with leaderboard(similar=True)
        "duration_s",
        "peak_memory_mb",
        "submitted_at",
    ]
    out["duration_s"] = out["duration_s"].round(1)
    out["peak_memory_mb"] = out["peak_memory_mb"].round(0)
    if "rank_best" in out:  # paired bootstrap intervals (harness.ranking_intervals)
        from harness.ranking_intervals import display_intervals

        primary = next(m for m in metrics if m.primary)
        out = out.join(display_intervals(df, primary.name, primary.precision))
        columns[2 + len(metrics) : 2 + len(metrics)] = ["ci", "ranks", "group"]
    return out[[c for c in columns if c in out]]


def _text_cells(df: pd.DataFrame, shown: Callable[[str], str]) -> pd.DataFrame:
    """A copy of ``df`` with ``shown`` applied to every text cell and every column name; numbers stay numbers."""
    out = df.copy()
    for column in out.columns:
        if pd.api.types.is_object_dtype(out[column]) or pd.api.types.is_string_dtype(out[column]):
            out[column] = out[column].map(lambda v: shown(v) if isinstance(v, str) else v).astype(out[column].dtype)
    return out.rename(columns=lambda c: shown(c) if isinstance(c, str) else c)


def _csv_cell(text: str) -> str:
    return spreadsheet_safe(visible(text))


def _markdown_cell(text: str) -> str:
    """A team's text as a Markdown table cell: visible, ``|`` escaped, and HTML escaped (Markdown renderers pass raw
    HTML through, so a team named ``<img src=x onerror=...>`` would run script where the table is shown)."""
    return html.escape(visible(text, keep=""), quote=False).replace("|", "\\|")


def export(df: pd.DataFrame, metrics: Sequence[MetricSpec], fmt: str, path: Path | None = None) -> str | None:
    """Write or return a metric table in ``csv``, ``markdown``, ``html``, ``parquet`` or ``json``.

    ``parquet`` needs a path; the others return the text when ``path`` is None. Values keep full precision in
    csv/parquet/json and are rounded to each metric's precision in markdown/html.

    Team text (names, reasons) is exact in json and parquet. In csv, markdown and html every text cell and column
    name is made visible (:func:`harness.text.visible`: control and bidirectional characters as escapes; newlines
    and tabs are kept in csv and html, escaped in markdown, where ``|`` is escaped too); csv text cells starting
    with ``=``, ``+``, ``-``, ``@``, tab or carriage return get a leading ``'`` so a spreadsheet shows them as text
    (:func:`harness.text.spreadsheet_safe`); numbers are written as numbers.

    Raises:
        ValueError: an unknown format, or parquet without a path.
    """
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    if fmt in ("parquet", "csv") and "inputs" in df:  # a dict per row: nested in json, JSON text in a cell here
        df = df.assign(inputs=df["inputs"].map(lambda v: json.dumps(v, sort_keys=True) if v else "").astype("string"))
    if fmt == "parquet":
        if path is None:
            raise ValueError("parquet needs --output PATH")
        df.to_parquet(path, index=False)
        return None
    if fmt == "csv":
        text = _text_cells(df, _csv_cell).to_csv(index=False)
    elif fmt == "json":
        text = df.to_json(orient="records", date_format="iso", indent=2)
    elif fmt in ("markdown", "html"):
        shown = display_table(df, metrics).astype(object)
        shown = shown.where(shown.notna(), "")  # an empty cell, not <NA> or nan, for rows without a value
        shown = shown.rename(columns={m.name: m.label or m.name for m in metrics})
        if fmt == "markdown":
            # numbers as the rounded values' shortest form, not tabulate's 6 significant digits (12346.048 -> 12346)
            shown = shown.map(lambda v: repr(float(v)) if isinstance(v, float) else v)
            text = _text_cells(shown, _markdown_cell).to_markdown(index=False, disable_numparse=True)
        else:
            text = _text_cells(shown, visible).to_html(index=False, border=0)
        if "intervals" in df and df["intervals"].notna().any():  # how the intervals were made, seed included
            from harness.ranking_intervals import separability

            note = f"ci, ranks, group: {df['intervals'].dropna().iloc[0]} (see README: reading intervals). "
            note = html.escape(visible(note + separability(df), keep=""), quote=False)  # team names in it
            text += f"\n\n{note}\n" if fmt == "markdown" else f"\n<p>{note}</p>\n"
    else:
        raise ValueError(f"unknown format {fmt!r}; expected table, csv, markdown, html, parquet or json")
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
        return None
    return text
