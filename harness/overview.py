"""The hackathon overview: one row per task (teams, valid runs, the leader, the report's path) from the store.

``harness overview`` prints it at the end of ``make demo``, after every task under ``task_specs/`` was judged::

    task               teams  valid runs  leader (primary public)     report
    nyc-flight-delays      7        4/7   gbm-notebook (mae 20.512)   reports/nyc-flight-delays/leaderboard.html

Only the store and the specs are read; nothing is evaluated.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError
from harness.ranking import metric_table, resolve_task
from harness.spec import SPEC_FILE, TaskSpec
from harness.store import Store

__all__ = ["TaskOverview", "find_tasks", "format_overview", "overview"]


@dataclass(frozen=True)
class TaskOverview:
    """One task's line of the overview.

    Attributes:
        task_id: the spec's id.
        kind: what the task predicts (:attr:`harness.spec.PredictionSpec.kind`).
        teams: teams with at least one active test run.
        runs: active test runs (one per submission).
        valid_runs: those that were scored (status ``succeeded``).
        leader: the first team of the public leaderboard, or ``""`` when no run was scored.
        primary: the primary metric's name.
        leader_score: the leader's public primary score, or ``None``.
        precision: decimals to show the score with.
        report: the judges' leaderboard page (``reports/<id>/leaderboard.html``), or ``None`` when not written.
    """

    task_id: str
    kind: str
    teams: int
    runs: int
    valid_runs: int
    leader: str
    primary: str
    leader_score: float | None
    precision: int
    report: Path | None


def find_tasks(root: Path) -> list[Path]:
    """Task folders (holding ``task.yaml``) directly under ``root``, sorted by name.

    Raises:
        HarnessError: ``root`` is not a folder or holds no task.
    """
    if not root.is_dir():
        raise HarnessError(f"{root} is not a folder of tasks; give the folder holding one sub-folder per task")
    found = sorted(p for p in root.iterdir() if (p / SPEC_FILE).is_file())
    if not found:
        raise HarnessError(f"no task under {root}: expected sub-folders holding {SPEC_FILE}")
    return found


def _one(spec: TaskSpec, store: Store, reports: Path, split: str) -> TaskOverview:
    runs = store.runs(spec.id, phase="test")
    valid = [r for r in runs if r.status == "succeeded"]
    primary = spec.primary_metric
    leader, score = "", None
    if valid:
        board = metric_table(spec, store, split=split)
        scored = board[board[primary.name].notna()]
        if len(scored):
            leader, score = str(scored.iloc[0]["team"]), float(scored.iloc[0][primary.name])
    page = reports / spec.id / "leaderboard.html"
    return TaskOverview(
        task_id=spec.id,
        kind=spec.predictions.kind,
        teams=len({r.team for r in runs}),
        runs=len(runs),
        valid_runs=len(valid),
        leader=leader,
        primary=primary.name,
        leader_score=score,
        precision=primary.precision,
        report=page if page.is_file() else None,
    )


def overview(
    tasks: Iterable[str | Path | TaskSpec], store: Store, *, reports: Path = Path("reports"), split: str = "public"
) -> list[TaskOverview]:
    """One :class:`TaskOverview` per task, in the given order.

    Args:
        tasks: task folders, ids or specs (see :func:`harness.ranking.resolve_task`).
        store: the results store the tasks were judged into.
        reports: the folder ``harness report`` wrote into (``reports/<task id>/leaderboard.html``).
        split: the test split that names the leader (``public`` or ``private``).

    Raises:
        SpecError: a task cannot be found.
    """
    return [_one(resolve_task(t), store, reports, split) for t in tasks]


def format_overview(rows: Sequence[TaskOverview], *, base: Path | None = None) -> list[list[str]]:
    """Table cells (header first) of :func:`overview`'s rows; report paths relative to ``base`` when inside it."""

    def shown(path: Path | None) -> str:
        if path is None:
            return "(no report)"
        path = path.resolve()
        if base is not None and path.is_relative_to(base.resolve()):
            return str(path.relative_to(base.resolve()))
        return str(path)

    cells = [["task", "kind", "teams", "valid runs", "leader (public)", "report"]]
    for row in rows:
        lead = f"{row.leader} ({row.primary} {row.leader_score:.{row.precision}f})" if row.leader else "-"
        cells.append([row.task_id, row.kind, str(row.teams), f"{row.valid_runs}/{row.runs}", lead, shown(row.report)])
    return cells
