"""``harness rescore``: score the kept predictions of a task's active runs again, without running any team code.

After an evaluator, reference or spec fix, every active run whose team code finished (``succeeded``,
``invalid_output``, ``evaluator_error``) and kept its output folder is validated and scored again with the
evaluator and reference as they are now (:func:`harness.scoring.batch.score_many`: a few evaluator processes, the
reference read once each). No sandbox and no container is started. Each result is written as a new run that
replaces the old one as the submission's active run, in one transaction per run
(:func:`harness.store.record_rescored`); the old run stays in the history with its scores and provenance.
Kept predictions that no longer validate make the new run ``invalid_output`` with the reason.

A changed input folder or a rebuilt image cannot be fixed this way (the team's code would read other data or run
elsewhere): :class:`RescoreSummary` counts those runs and points to ``harness run --rerun``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import EvaluatorError, HarnessError, InvalidOutputError
from harness.provenance import current_image_id, file_sha256, staleness, task_inputs
from harness.record import RunRecord
from harness.scoring.kept import kept_output_dir, kept_predictions_path
from harness.spec import TaskSpec
from harness.status import Status
from harness.store import ScoredRun, Store, record_rescored
from harness.text import visible

__all__ = ["RESCORABLE_STATUSES", "RescoreSummary", "Rescored", "rescore_task"]

#: Statuses of runs whose team code finished and whose outputs the evaluator saw (or should have seen).
RESCORABLE_STATUSES = (Status.SUCCEEDED, Status.INVALID_OUTPUT, Status.EVALUATOR_ERROR)


@dataclass(frozen=True)
class Rescored:
    """One run scored again.

    Attributes:
        team: the team.
        old_run_id / new_run_id: the replaced run (history now) and its replacement (active).
        status: the new run's status.
        reason: the new run's reason (``""`` on success).
        before / after: the primary metric on the shown split, before and after (``None`` when not scored).
        old_status / old_reason: the replaced run's status and reason.
    """

    team: str
    old_run_id: int
    new_run_id: int
    status: Status
    reason: str
    before: float | None
    after: float | None
    old_status: str = ""
    old_reason: str = ""

    @property
    def changed(self) -> bool:
        """Whether rescoring changed the run's outcome (its status, reason or shown score)."""
        return self.before != self.after or str(self.status) != self.old_status or self.reason != self.old_reason


@dataclass
class RescoreSummary:
    """What :func:`rescore_task` did.

    Attributes:
        task_id: the task.
        split: the split whose primary metric :meth:`message` shows.
        metric: that metric's name.
        rescored: the runs scored again.
        skipped: ``(team, run_id, why)`` of active runs not scored again (their code failed, nothing was kept, the
            kept file changed since it was scored).
        needs_rerun: runs whose input data or image changed since they ran: still stale after rescoring.
        current: active runs already scored with the current evaluator, spec and reference (not scored again
            unless ``every`` was asked).
        duration_s: wall-clock seconds.
    """

    task_id: str
    split: str
    metric: str
    rescored: list[Rescored] = field(default_factory=list)
    skipped: list[tuple[str, int, str]] = field(default_factory=list)
    needs_rerun: int = 0
    current: int = 0
    duration_s: float = 0.0

    @property
    def evaluator_errors(self) -> int:
        """Rescored runs whose evaluator failed (the task author's to fix)."""
        return sum(1 for item in self.rescored if item.status is Status.EVALUATOR_ERROR)

    def lines(self) -> list[str]:
        """Lines for people: one per rescored run whose outcome changed, the skipped runs, and the totals."""
        out = []
        for item in self.rescored:
            if not item.changed:
                continue
            if item.status is not Status.SUCCEEDED:
                out.append(f"{item.team}: run {item.old_run_id} -> {item.new_run_id} is {item.status}: {item.reason}")
            elif item.before != item.after:
                out.append(
                    f"{item.team}: {self.metric} ({self.split}) {_shown(item.before)} -> {_shown(item.after)} "
                    f"(run {item.old_run_id} -> {item.new_run_id})"
                )
        for team, run_id, why in self.skipped:
            out.append(f"{team}: run {run_id} not rescored: {why}")
        changed = sum(1 for item in self.rescored if item.changed)
        current = f", {self.current} already current (--all scores them too)" if self.current else ""
        out.append(
            f"{len(self.rescored)} run(s) of {self.task_id} rescored from their kept predictions in "
            f"{self.duration_s:.1f} s ({changed} changed), {len(self.skipped)} skipped{current}; no team code was run"
        )
        if self.evaluator_errors:
            out.append(
                f"{self.evaluator_errors} run(s) got evaluator_error: the evaluator failed on their predictions; fix "
                "it and rescore again (the earlier scores stay in the history)"
            )
        if self.needs_rerun:
            out.append(
                f"{self.needs_rerun} run(s) ran on input data or an image that changed since: rescoring cannot fix "
                "that; run the teams' code again with `harness run TASK_DIR SUBMISSIONS_DIR --rerun`"
            )
        return [visible(line, keep="") for line in out]


def _shown(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def _primary(spec: TaskSpec) -> str:
    return next((m.name for m in spec.metrics if m.primary), spec.metrics[0].name)


def rescore_task(
    spec: TaskSpec,
    store: Store,
    *,
    team: str | None = None,
    phase: str = "test",
    split: str | None = None,
    workers: int | None = None,
    every: bool = False,
) -> RescoreSummary:
    """Score the kept predictions of a task's active runs again and make the new scores active.

    Args:
        spec: the task as it is now (its evaluator and reference score the runs).
        store: the results store; the task's lease is held while rescoring (no ``harness run`` writes meanwhile).
        team: only this team's active runs.
        phase: ``test`` (default) or ``validation``.
        split: the split whose primary metric the summary shows (default: the phase's first); every split is
            scored again, so a run stays whole.
        workers: evaluator processes at once (default: the number of cores).
        every: score runs that are already current too (by default only stale runs, or runs of unknown
            provenance, are scored again, so a second rescore adds no history).

    Returns:
        A :class:`RescoreSummary`.

    Raises:
        HarnessError: no active runs (for the team), or an unknown split or phase.
        EvaluatorError: the evaluator failed on every run scored: nothing was changed (a broken evaluator never
            empties the board).
        StoreError: another coordinator holds the task's lease.
    """
    from harness.scoring.batch import score_many

    started = dt.datetime.now(dt.UTC)
    if phase not in spec.data.references:
        raise HarnessError(f"unknown phase {phase!r}; expected one of {', '.join(spec.data.references)}")
    splits = spec.splits(phase)
    shown_split = split or splits[0]
    if shown_split not in splits:
        raise HarnessError(f"unknown split {shown_split!r} of phase {phase}; expected one of {', '.join(splits)}")
    metric = _primary(spec)
    summary = RescoreSummary(task_id=spec.id, split=shown_split, metric=metric)
    runs = store.runs(spec.id, phase=phase)
    if team is not None:
        runs = [run for run in runs if run.team == team]
    if not runs:
        who = f" of team {team!r}" if team is not None else ""
        raise HarnessError(
            f"no active runs{who} of task {spec.id!r} ({phase}) in the store at {store._safe_url()}; "
            "run `harness run TASK_DIR SUBMISSIONS_DIR` first (with the same --home/--db)"
        )
    now = task_inputs(spec, phase)
    image = current_image_id(spec)
    check = {**now, **({"image_id": image} if image else {})}
    todo: list[ScoredRun] = []
    for run in runs:
        why = _why_not(spec, run)
        if why:
            summary.skipped.append((run.team, run.run_id, why))
        elif not every and not staleness(run.provenance.get("inputs"), check, phase=phase).stale:
            summary.current += 1
        else:
            todo.append(run)
    store.acquire_lease(spec.id)
    try:
        outcomes = score_many(spec, [kept_output_dir(run.artifacts_dir) for run in todo], phase, workers=workers)
        if outcomes and all(isinstance(outcome, EvaluatorError) for outcome in outcomes):
            first = outcomes[0]
            raise EvaluatorError(
                f"the evaluator failed on all {len(outcomes)} run(s) it scored again, so nothing was changed: "
                f"{first}; fix the evaluator and rescore again",
                getattr(first, "detail", ""),
            )
        for run, outcome in zip(todo, outcomes, strict=True):
            recorded = dict(run.provenance.get("inputs") or {})
            if staleness(recorded, check, phase=phase).needs_rerun:
                summary.needs_rerun += 1
            record = _record(spec, run, outcome, now, recorded)
            new_id = record_rescored(store, run.run_id, record)
            summary.rescored.append(
                Rescored(
                    team=run.team,
                    old_run_id=run.run_id,
                    new_run_id=new_id,
                    status=record.status,
                    reason=record.reason,
                    before=run.scores.get(shown_split, {}).get(metric),
                    after=record.scores.get(shown_split, {}).get(metric),
                    old_status=str(run.status),
                    old_reason=run.reason,
                )
            )
    finally:
        store.release_lease(spec.id)
        summary.duration_s = (dt.datetime.now(dt.UTC) - started).total_seconds()
    return summary


def _why_not(spec: TaskSpec, run: ScoredRun) -> str:
    """Why a run cannot be rescored, or ``""``."""
    if run.status not in RESCORABLE_STATUSES:
        return (
            f"its status is {run.status}: the team's code did not get to predictions that could be scored, so "
            "only running it again (`harness run --rerun`) can change it"
        )
    if not run.artifacts_dir or not kept_output_dir(run.artifacts_dir).is_dir():
        return f"its output folder is no longer kept ({kept_output_dir(run.artifacts_dir or '.')})"
    recorded = (run.provenance.get("inputs") or {}).get("predictions")
    if recorded and spec.evaluator.mode == "predictions":
        kept = file_sha256(kept_predictions_path(spec, run.artifacts_dir))
        if kept != recorded:
            return (
                f"its kept {spec.predictions.file} changed since it was scored (sha256 {kept[:12] or 'missing'}, "
                f"recorded {recorded[:12]}); verify or rerun it"
            )
    return ""


def _record(
    spec: TaskSpec,
    run: ScoredRun,
    outcome: dict[str, dict[str, float]] | InvalidOutputError | EvaluatorError,
    now: dict[str, object],
    recorded: dict[str, object],
) -> RunRecord:
    """The new run's record: the scores (or the refusal) and provenance with the task's inputs as they are now."""
    artifacts = Path(run.artifacts_dir)
    inputs = {
        **now,
        # what produced the predictions is what the team's code ran on then, not now
        "input": recorded.get("input", ""),
        "image_id": recorded.get("image_id", run.provenance.get("image_id", "")),
        "predictions": file_sha256(kept_predictions_path(spec, artifacts)),
    }
    provenance = {
        "spec_hash": spec.spec_hash,
        "inputs": inputs,
        "rescored_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    record = RunRecord(
        task_id=spec.id,
        phase=run.phase,
        team=run.team,
        content_hash=run.content_hash,
        kind=run.kind,
        status=Status.SUCCEEDED,
        artifacts_dir=run.artifacts_dir,
        provenance=provenance,
        finished_at=dt.datetime.now(dt.UTC),
    )
    if isinstance(outcome, InvalidOutputError):
        record.status = Status.INVALID_OUTPUT
        record.problems = list(outcome.problems)
        record.reason = outcome.problems[0] if outcome.problems else outcome.message
        if len(outcome.problems) > 1:
            record.reason += f" (and {len(outcome.problems) - 1} more problem(s))"
        record.reason += " (rescored from the kept predictions)"
    elif isinstance(outcome, EvaluatorError):
        record.status = Status.EVALUATOR_ERROR
        record.reason = outcome.message
        record.problems = [outcome.detail] if outcome.detail else []
    else:
        record.scores = outcome
    return record
