"""Paired bootstrap intervals, rank ranges and tie groups on a leaderboard (the store's runs, their kept predictions).

:func:`add_intervals` takes a ranked metric table (:func:`harness.ranking.metric_table`) and adds, for the ranked
rows, each metric's interval and the rank range, leader flag and tie group of the primary metric (the rules are
in :mod:`harness.intervals`). Every team's kept predictions are read once (:mod:`harness.scoring.kept`), scored
per row with the evaluator's :meth:`~harness.scoring.Evaluator.row_scores` where it gives a metric's per-row form,
and resampled on the same rows for every team. The settings come from the spec (``leaderboard.intervals``) and
are written into the table (column ``intervals`` and ``table.attrs["intervals"]``), seed included.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.errors import HarnessError
from harness.intervals import Comparison, bootstrap_means, bootstrap_scores, compare, percentile_interval, split_rng
from harness.provenance import file_sha256
from harness.scoring.evaluator import Evaluator, load_evaluator
from harness.scoring.kept import aligned_predictions, kept_predictions_path, load_phase_reference
from harness.scoring.rows import row_score_parts
from harness.spec import TaskSpec
from harness.store.reading import RunSource, ScoredRun

log = logging.getLogger(__name__)

__all__ = [
    "INTERVAL_COLUMNS",
    "SplitRows",
    "add_intervals",
    "display_intervals",
    "interval_columns",
    "load_split_rows",
    "separability",
]

#: Columns :func:`add_intervals` adds after the metric table's (``<metric>_low``/``<metric>_high`` per metric
#: come first, float64): rank range, leader flag, tie group (of the primary metric) and the settings used.
INTERVAL_COLUMNS: dict[str, str] = {
    "rank_best": "Int64",
    "rank_worst": "Int64",
    "tied_with_leader": "boolean",
    "tie_group": "Int64",
    "intervals": "string",
}


def interval_columns(metrics: Sequence[str]) -> list[str]:
    """The names of the columns :func:`add_intervals` adds, in order."""
    return [c for m in metrics for c in (f"{m}_low", f"{m}_high")] + list(INTERVAL_COLUMNS)


@dataclass
class SplitRows:
    """One split's reference rows and the aligned predictions of some runs (what ``score`` gets per run).

    Attributes:
        reference: the split's reference rows, index ``0..n-1``.
        predictions: run id -> that run's predictions on the split's rows, aligned to ``reference``.
        missing: run id -> why its predictions could not be read.
        spec, phase: the task and phase the evaluator is made for.
    """

    reference: pd.DataFrame
    predictions: dict[int, pd.DataFrame]
    missing: dict[int, str]
    spec: TaskSpec
    phase: str

    @cached_property
    def evaluator(self) -> Evaluator:
        """An instance of the task's evaluator (for ``score`` and ``row_scores``), imported when first asked for:
        a board whose intervals are unavailable (a ranked team's kept predictions missing) never imports it.

        Raises:
            EvaluatorError: the evaluator cannot be loaded (:func:`~harness.scoring.evaluator.load_evaluator`).
        """
        return load_evaluator(self.spec)(self.spec, self.phase, Path("."))

    def row_values(
        self, run_ids: Sequence[int], metric: str
    ) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray] | None] | None:
        """The per-row values ``(n, len(run_ids))`` of a metric and its transform, or None if the evaluator gives
        no per-row form of it."""
        columns: list[np.ndarray] = []
        transform = None
        for run_id in run_ids:
            answer = self.evaluator.row_scores(self.predictions[run_id], self.reference)
            if metric not in answer:
                return None
            values, transform = row_score_parts(answer[metric])
            if len(values) != len(self.reference):
                raise HarnessError(
                    f"{type(self.evaluator).__name__}.row_scores returned {len(values)} values of {metric!r} for "
                    f"{len(self.reference)} rows; return one value per row of the split"
                )
            columns.append(values)
        return np.column_stack(columns), transform


def load_split_rows(spec: TaskSpec, runs: Sequence[ScoredRun], split: str, *, phase: str = "test") -> SplitRows:
    """Read the reference once and each run's kept predictions, restricted to one split's rows.

    The evaluator is loaded when first used (:attr:`SplitRows.evaluator`), not here.

    Raises:
        HarnessError: the task's evaluator does not score a predictions file (``evaluator.mode: output_dir``).
        EvaluatorError: the reference is unusable.
    """
    if spec.evaluator.mode != "predictions":
        raise HarnessError(
            f"task {spec.id} is scored from an output folder (evaluator.mode: output_dir): intervals need per-row "
            "predictions; run the leaderboard with --no-intervals"
        )
    phase_reference = load_phase_reference(spec, phase)
    mask = phase_reference.masks[split]
    reference = phase_reference.split(split)
    predictions: dict[int, pd.DataFrame] = {}
    missing: dict[int, str] = {}
    for run in runs:
        path = kept_predictions_path(spec, run.artifacts_dir)
        recorded = (run.provenance.get("inputs") or {}).get("predictions")
        try:
            if not path.is_file():
                missing[run.run_id] = f"{path} is missing"
                continue
            if recorded and file_sha256(path) != recorded:  # changed on disk since it was scored: not what ranked
                missing[run.run_id] = f"{path} changed since it was scored (sha256 differs from the run's record)"
                continue
            aligned = aligned_predictions(spec, path, phase_reference.reference, phase_reference.expected_ids)
        except (HarnessError, OSError) as exc:
            missing[run.run_id] = f"{path}: {exc}"
            continue
        predictions[run.run_id] = aligned[mask].reset_index(drop=True)
    return SplitRows(reference=reference, predictions=predictions, missing=missing, spec=spec, phase=phase)


def _metric_samples(
    rows: SplitRows, run_ids: Sequence[int], metric: str, scored: Sequence[float], spec: TaskSpec, split: str
) -> np.ndarray:
    """``(B, T)`` resampled values of one metric for the runs, paired across runs."""
    settings = spec.leaderboard.intervals
    n = len(rows.reference)
    per_row = rows.row_values(run_ids, metric)
    if per_row is not None:
        values, transform = per_row
        full = values.mean(axis=0)
        full = transform(full) if transform is not None else full
        if np.allclose(full, scored, rtol=1e-6, atol=1e-9):
            means = bootstrap_means(values, settings.resamples, split_rng(settings.seed, split))
            return transform(means) if transform is not None else means
        log.warning(
            "%s.row_scores gives %s = %s on split %s but the runs scored %s: rescoring resampled rows with score() "
            "instead (fix row_scores so its mean is the metric)",
            type(rows.evaluator).__name__,
            metric,
            np.round(full, 6).tolist()[:3],
            split,
            list(scored)[:3],
        )
    reference = rows.reference
    frames = [rows.predictions[r] for r in run_ids]
    cache: dict[int, pd.DataFrame] = {}

    def score(team: int, indices: np.ndarray) -> float:
        key = id(indices)
        if key not in cache:
            cache.clear()
            cache[key] = reference.iloc[indices].reset_index(drop=True)
        answer = rows.evaluator.score(frames[team].iloc[indices].reset_index(drop=True), cache[key])
        return float(answer[metric])

    return bootstrap_scores(score, len(frames), n, settings.score_resamples, split_rng(settings.seed, split))


def add_intervals(
    table: pd.DataFrame,
    spec: TaskSpec,
    store: RunSource,
    *,
    split: str,
    phase: str = "test",
    runs: Sequence[ScoredRun] | None = None,
) -> pd.DataFrame:
    """The metric table with paired bootstrap intervals of its ranked rows (a copy; unranked rows get <NA>).

    Args:
        table: a ranked metric table (:func:`harness.ranking.metric_table`) of ``spec`` on ``split``.
        spec: the task spec (metrics, ``leaderboard.intervals``).
        store: the store the table came from (for each run's artifacts folder).
        split: the split the table shows.
        runs: the task's active runs of ``phase`` the table was made from, if already read (else read here).

    Returns:
        ``table``'s columns, then :func:`interval_columns` (dtypes: float64 per metric bound, then
        :data:`INTERVAL_COLUMNS`). When a ranked team's kept predictions cannot be read, or differ from the sha256
        its run recorded, no row gets intervals (rank ranges are only true among all ranked teams): the reason
        is in ``attrs["intervals"]["unavailable"]``.
        ``attrs["intervals"]``: the settings (resamples, level, seed, split) and ``leader_separable``.

        A task scored from an output folder (``evaluator.mode: output_dir``), or whose reference or evaluator
        cannot be loaded, gets <NA> intervals, and the reason in ``attrs["intervals"]["unavailable"]``.

    Raises:
        HarnessError: the evaluator's ``row_scores`` is malformed.
    """
    settings = spec.leaderboard.intervals
    out = table.copy().reset_index(drop=True)
    metrics = list(spec.metrics)
    for metric in metrics:
        out[f"{metric.name}_low"] = np.nan
        out[f"{metric.name}_high"] = np.nan
    for column, dtype in INTERVAL_COLUMNS.items():
        out[column] = pd.Series(pd.NA, index=out.index, dtype=dtype)
    description = (
        f"paired bootstrap, {settings.level:.0%} percentile intervals, {settings.resamples} resamples "
        f"({settings.score_resamples} for metrics rescored per resample), seed {settings.seed}, split {split}"
    )
    attrs: dict[str, object] = {
        "resamples": settings.resamples,
        "score_resamples": settings.score_resamples,
        "level": settings.level,
        "seed": settings.seed,
        "split": split,
        "leader_separable": None,
        "unavailable": "",
    }
    out.attrs["intervals"] = attrs
    ranked = out.index[out["rank"].notna()]
    if len(ranked) == 0:
        return out
    if spec.evaluator.mode != "predictions":
        attrs["unavailable"] = "the task is scored from an output folder, not from per-row predictions"
        log.info("no intervals for task %s: %s", spec.id, attrs["unavailable"])
        return out
    by_id = {run.run_id: run for run in (store.runs(spec.id, phase=phase) if runs is None else runs)}
    run_ids = [int(r) for r in out.loc[ranked, "run_id"].tolist()]
    try:
        rows = load_split_rows(spec, [by_id[r] for r in run_ids if r in by_id], split, phase=phase)
    except HarnessError as exc:  # the reference or the evaluator cannot be loaded: the board still shows
        attrs["unavailable"] = str(exc)
        log.info("no intervals for task %s: %s", spec.id, exc)
        return out
    lost = [r for r in run_ids if r not in rows.predictions]
    if lost:  # a rank range is only true among all ranked teams: none rather than ranges that skip a team
        teams = {r: str(by_id[r].team) if r in by_id else f"run {r}" for r in lost}
        whys = [rows.missing.get(r, "its run is not in the store") for r in lost]
        attrs["unavailable"] = (
            f"the kept predictions of {len(lost)} ranked team(s) cannot be used ("
            + "; ".join(f"{teams[r]}: {why}" for r, why in list(zip(lost, whys, strict=True))[:3])
            + (" ..." if len(lost) > 3 else "")
            + "); intervals, rank ranges and tie groups need every ranked team's: `harness verify` or "
            "`harness run --rerun` those teams"
        )
        log.warning("no intervals for task %s: %s", spec.id, attrs["unavailable"])
        return out
    try:
        rows.evaluator  # noqa: B018  (loaded now, only when every ranked team's predictions are there)
    except HarnessError as exc:  # the evaluator cannot be loaded: the board still shows
        attrs["unavailable"] = str(exc)
        log.info("no intervals for task %s: %s", spec.id, exc)
        return out
    kept = list(zip(ranked, run_ids, strict=True))
    index = [i for i, _ in kept]
    ids = [r for _, r in kept]
    primary = next(m for m in metrics if m.primary)
    comparison: Comparison | None = None
    for metric in metrics:
        scored = [float(by_id[r].scores.get(split, {}).get(metric.name, math.nan)) for r in ids]
        samples = _metric_samples(rows, ids, metric.name, scored, spec, split)
        if metric is primary:
            comparison = compare(samples, higher_is_better=metric.goal == "maximize", level=settings.level)
            low, high = comparison.low, comparison.high
        else:
            low, high = percentile_interval(samples, settings.level)
        out.loc[index, f"{metric.name}_low"] = low
        out.loc[index, f"{metric.name}_high"] = high
    assert comparison is not None
    out.loc[index, "rank_best"] = comparison.rank_best
    out.loc[index, "rank_worst"] = comparison.rank_worst
    out.loc[index, "tied_with_leader"] = comparison.tied_with_leader
    out.loc[index, "tie_group"] = comparison.tie_group
    out.loc[index, "intervals"] = description
    attrs["leader_separable"] = comparison.leader_separable
    return out


def separability(table: pd.DataFrame) -> str:
    """One sentence for judges: are first and second separable on the table's intervals? ("" without intervals)."""
    if "tie_group" not in table or table["tie_group"].notna().sum() < 2:
        return ""
    ranked = table[table["tie_group"].notna()]
    first, second = ranked.iloc[0], ranked.iloc[1]
    level = table.attrs.get("intervals", {}).get("level", 0.95)
    teams = f"first ({first['team']}) and second ({second['team']})"
    if bool(second["tied_with_leader"]):
        tied = int(ranked["tied_with_leader"].sum())
        return (
            f"{teams} are NOT separable at {level:.0%}: the paired interval of their difference contains zero; "
            f"{tied} team(s) are not significantly different from the leader"
        )
    return f"{teams} are separable at {level:.0%}: the paired interval of their difference excludes zero"


def display_intervals(table: pd.DataFrame, primary: str, precision: int) -> pd.DataFrame:
    """Text columns judges read (a frame on ``table``'s index, empty when it has no intervals): ``ci`` (the primary
    metric's interval, ``[low, high]`` at the metric's precision), ``ranks`` (``best-worst``, or one rank), ``group``
    (the tie group, ``= leader`` appended when not significantly different from the leader)."""
    if "rank_best" not in table:
        return pd.DataFrame(index=table.index)

    def ci(low: Any, high: Any) -> str:
        return "" if pd.isna(low) else f"[{low:.{precision}f}, {high:.{precision}f}]"

    def ranks(best: Any, worst: Any) -> str:
        if pd.isna(best):
            return ""
        best, worst = int(best), int(worst)
        return str(best) if best == worst else f"{best}-{worst}"

    def group(tie_group: Any, tied: Any) -> str:
        if pd.isna(tie_group):
            return ""
        return f"{int(tie_group)}{' = leader' if bool(tied) else ''}"

    def column(cell: Callable[[Any, Any], str], first: str, second: str) -> pd.Series:
        # the cells of two columns, row by row, from plain lists (a Series per row took 0.1 s for 1,000 rows)
        texts = [cell(a, b) for a, b in zip(table[first].tolist(), table[second].tolist(), strict=True)]
        return pd.Series(texts, index=table.index, dtype="string")

    return pd.DataFrame(
        {
            "ci": column(ci, f"{primary}_low", f"{primary}_high"),
            "ranks": column(ranks, "rank_best", "rank_worst"),
            "group": column(group, "tie_group", "tied_with_leader"),
        },
        index=table.index,
    )
