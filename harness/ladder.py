"""The Ladder: a public leaderboard that a team cannot climb by probing the public split.

Blum and Hardt (2015), "The Ladder: a reliable leaderboard for machine learning competitions" (ICML), the
parameter-free variant: a team's public score changes only when a new submission beats the team's current best
by more than the paired standard error, ``std(loss_new - loss_best) / sqrt(n)`` over the public rows; otherwise
the old score stays shown. A team probing the public split with many submissions then learns almost nothing (the
"boosting attack": many random submissions, a majority vote of those that scored well). The paper also rounds
the shown score to a multiple of ``1/n``; scores here keep the metric's own scale and precision instead.

Opt in with ``leaderboard.public_rule: ladder`` in ``task.yaml``. Only the public board changes: the run the
Ladder last accepted is the one shown (and its scores); the private ranking keeps the ``selection`` rule.
The primary metric needs a per-row form (:meth:`harness.scoring.Evaluator.row_scores`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.errors import HarnessError
from harness.spec import TaskSpec
from harness.status import Status
from harness.store.reading import RunSource

__all__ = ["LadderResult", "ladder", "ladder_choices", "ladder_table"]


@dataclass(frozen=True)
class LadderResult:
    """The Ladder over one team's submissions, in submission order (arrays of length ``k``).

    Attributes:
        shown: the public score shown after each submission (the metric's scale).
        accepted: bool; the submission moved the shown score.
        best: index of the submission whose score is shown after each one.
    """

    shown: np.ndarray
    accepted: np.ndarray
    best: np.ndarray


def ladder(values: Sequence[np.ndarray] | np.ndarray, *, higher_is_better: bool) -> LadderResult:
    """Run the parameter-free Ladder over a team's submissions.

    Args:
        values: ``k`` arrays of shape ``(n,)`` (or one ``(k, n)`` array): per-row values on the public rows of
            each submission, in submission order, whose mean is the metric (e.g. 0/1 correct, absolute errors).
        higher_is_better: the metric's direction.

    Returns:
        The shown scores, which submissions were accepted, and which one is shown after each.

    Raises:
        ValueError: no submission, or rows of different lengths or fewer than two rows.
    """
    matrix = np.asarray(values, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] == 0 or matrix.shape[1] < 2:
        raise ValueError(f"values must have shape (submissions >= 1, rows >= 2), not {matrix.shape}")
    losses = -matrix if higher_is_better else matrix  # lower is better from here on
    k, n = losses.shape
    shown, accepted, best = np.empty(k), np.zeros(k, dtype=bool), np.zeros(k, dtype=np.int64)
    current = 0
    accepted[0] = True
    for t in range(1, k):
        diff = losses[t] - losses[current]
        margin = float(np.std(diff, ddof=1)) / np.sqrt(n)
        if losses[t].mean() < losses[current].mean() - margin:
            current = t
            accepted[t] = True
        best[t] = current
    means = matrix.mean(axis=1)
    shown[:] = means[best]
    return LadderResult(shown=shown, accepted=accepted, best=best)


def ladder_choices(spec: TaskSpec, store: RunSource, *, phase: str = "test") -> dict[str, int]:
    """Each team's run the Ladder shows on the public board: team -> run id (teams with a valid run only).

    Raises:
        HarnessError: the evaluator gives no per-row form of the primary metric, the task has no predictions, or a
            valid run's kept predictions are missing or changed since it was scored.
    """
    from harness.ranking_intervals import load_split_rows

    primary = next(m for m in spec.metrics if m.primary)
    runs = [
        r
        for r in store.runs(spec.id, phase=phase)
        if r.status == Status.SUCCEEDED and np.isfinite(r.scores.get("public", {}).get(primary.name, np.nan))
    ]
    rows = load_split_rows(spec, runs, "public", phase=phase)
    if rows.missing:  # skipping a run would change which submission the Ladder accepts: refuse, and say why
        shown = "; ".join(f"run {run_id}: {why}" for run_id, why in list(rows.missing.items())[:3])
        raise HarnessError(
            f"the Ladder needs the kept predictions of every valid run, and {len(rows.missing)} cannot be used "
            f"({shown}); run those submissions again (`harness run TASK_DIR SUBMISSIONS_DIR --rerun`), or set "
            "leaderboard.public_rule: best in task.yaml for the plain public board"
        )
    by_team: dict[str, list[int]] = defaultdict(list)
    # In the order the harness registered the submissions (ids increase), never by submitted_at: that is an
    # entry's file time, which a team sets (touch -d, an archive's stored times) to put a probe first.
    for run in sorted(runs, key=lambda r: (r.submission_id, r.run_id)):
        if run.run_id in rows.predictions:
            by_team[run.team].append(run.run_id)
    choices: dict[str, int] = {}
    for team, run_ids in by_team.items():
        per_row = rows.row_values(run_ids, primary.name)
        if per_row is None or per_row[1] is not None:
            raise HarnessError(
                f"leaderboard.public_rule: ladder needs the per-row form of the primary metric {primary.name!r} "
                f"(a mean over rows, from {type(rows.evaluator).__name__}.row_scores); implement row_scores or use "
                "public_rule: best"
            )
        result = ladder(per_row[0].T, higher_is_better=primary.goal == "maximize")
        choices[team] = run_ids[int(result.best[-1])]
    return choices


def ladder_table(spec: TaskSpec, store: RunSource, table: pd.DataFrame, runs_table: pd.DataFrame) -> pd.DataFrame:
    """The public leaderboard under the Ladder.

    Args:
        table: the public leaderboard under the spec's selection rule (:func:`harness.ranking.metric_table`).
        runs_table: the public metric table with one row per run (``per_team=False``).

    Returns:
        ``table`` with each team that has a valid run showing the run :func:`ladder_choices` picked, ranked again.
    """
    from harness.ranking import rank_table

    choices = ladder_choices(spec, store)
    chosen = runs_table[runs_table["run_id"].isin(list(choices.values()))]
    rest = table[~table["team"].isin(list(choices))]
    return rank_table(pd.concat([chosen, rest], ignore_index=True), spec.metrics)
