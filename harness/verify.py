"""``harness verify RUN_ID``: run one recorded submission again in a fresh sandbox and say whether it reproduces.

Judges use it on finalists before prizes are announced. :func:`verify_run` opens the run's submission from its
recorded source as a batch does (:func:`harness.submission.open_entry`, the content hash checked against the
store's), evaluates it with :func:`harness.pipeline.evaluate_opened` into a new folder under
``HOME/verify/run-<id>-<time>/`` and compares: the predictions byte for byte (sha256), the scores exactly, and the
inputs recorded then with the inputs now (evaluator, spec, reference, input data, image). Nothing is written to the
store: the leaderboard does not change.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.provenance import file_sha256, task_inputs
from harness.record import RunRecord
from harness.scoring.kept import kept_predictions_path
from harness.spec import TaskSpec
from harness.store import ScoredRun, Store, run_by_id
from harness.text import visible

__all__ = ["Verification", "verify_run"]

_INPUT_NAMES = {
    "evaluator": "the evaluator changed since the run",
    "spec": "task.yaml changed since the run",
    "reference": "the reference data changed since the run",
    "input": "the input data changed since the run (the team's code read other data)",
    "image_id": "the image was rebuilt since the run (the team's code ran in another image)",
}


@dataclass
class Verification:
    """The outcome of running a recorded submission again.

    Attributes:
        run_id: the run verified.
        team: its team.
        identical_predictions: the predictions file written now has the same bytes as the one scored then (or
            neither run wrote one).
        no_predictions: neither run wrote a predictions file (a failed run failing again).
        old_exit_code / new_exit_code: the team's command's exit code then and now (a failed run reproduces
            only with the same one).
        scores_equal: every split's metrics are exactly equal.
        old_scores / new_scores: ``{split: {metric: value}}`` then and now.
        old_status / new_status: the statuses then and now.
        new_reason: the reason of the new run (``""`` on success).
        differences: what differs, one sentence each (empty when the run reproduces).
        artifacts_dir: the new run's log, outputs and executed notebook.
    """

    run_id: int
    team: str
    identical_predictions: bool
    scores_equal: bool
    old_scores: dict[str, dict[str, float]]
    new_scores: dict[str, dict[str, float]]
    old_status: str
    new_status: str
    new_reason: str = ""
    no_predictions: bool = False
    old_exit_code: int | None = None
    new_exit_code: int | None = None
    differences: list[str] = field(default_factory=list)
    artifacts_dir: str = ""

    @property
    def reproduced(self) -> bool:
        """Whether the run reproduced: identical predictions, equal scores, same status."""
        same_exit = not self.no_predictions or self.old_exit_code == self.new_exit_code
        return self.identical_predictions and self.scores_equal and self.old_status == self.new_status and same_exit

    def lines(self) -> list[str]:
        """Lines for people: the verdict, each score difference, each cause found, where the new run's files are."""
        verdict = "reproduced" if self.reproduced else "did NOT reproduce"
        out = [
            f"run {self.run_id} of team {self.team}: {verdict}",
            "predictions: none written, then or now"
            if self.no_predictions
            else f"predictions: {'byte-identical' if self.identical_predictions else 'differ'}",
            f"scores: {'equal' if self.scores_equal else 'differ'}",
        ]
        if self.old_status != self.new_status:
            now = f": {self.new_reason}" if self.new_reason else ""
            out.append(f"status: {self.old_status} then, {self.new_status} now{now}")
        elif self.no_predictions and self.old_exit_code != self.new_exit_code:
            out.append(f"exit code: {self.old_exit_code} then, {self.new_exit_code} now: {self.new_reason}")
        for split in sorted(set(self.old_scores) | set(self.new_scores)):
            old, new = self.old_scores.get(split, {}), self.new_scores.get(split, {})
            for metric in sorted(set(old) | set(new)):
                a, b = old.get(metric), new.get(metric)
                if a != b:
                    delta = f" ({b - a:+.6g})" if a is not None and b is not None else ""
                    out.append(f"  {split} {metric}: {_num(a)} then, {_num(b)} now{delta}")
        out += [f"  - {line}" for line in self.differences]
        out.append(f"the new run's files: {self.artifacts_dir}")
        return [visible(line, keep="") for line in out]


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def verify_run(
    store: Store,
    run_id: int,
    *,
    home: Path,
    spec: TaskSpec | None = None,
    sandbox: str = "docker",
) -> Verification:
    """Run a recorded submission again from its source in a fresh sandbox and compare with what was recorded.

    Args:
        store: the results store (only read).
        run_id: the run to verify (active or not).
        home: harness home; the new run's files go to ``home/verify/run-<id>-<time>/``.
        spec: the task (default: found from the run's task id under ``./task_specs`` or ``$HARNESS_TASKS``).
        sandbox: ``docker`` (default) or ``process``.

    Returns:
        A :class:`Verification`.

    Raises:
        HarnessError: no such run, the spec is of another task, the submission's source is gone or its content
            changed since (then the run cannot be verified).
        SpecError: the task cannot be found.
        EngineUnavailableError, ImageError: the sandbox cannot run at all.
    """
    from harness.pipeline import evaluate_opened
    from harness.ranking import resolve_task
    from harness.submission import SubmissionEntry, open_entry

    run = run_by_id(store, run_id)
    if run is None:
        raise HarnessError(f"no run {run_id} in the store at {store._safe_url()}; run ids are in `harness leaderboard "
                           "--format json` (run_id)")  # fmt: skip
    spec = spec or resolve_task(run.task_id)
    if spec.id != run.task_id:
        raise HarnessError(f"run {run_id} is of task {run.task_id!r}, not of {spec.id!r}; give that task's folder")
    source = Path(run.source)
    if not source.exists():
        raise HarnessError(
            f"the submission of run {run_id} was read from {source}, which no longer exists; put it back to verify"
        )
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    root = Path(home) / "verify"
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"run-{run_id}-{stamp}-", dir=root))
    entry = SubmissionEntry(path=source, default_team_name=run.team)
    opened, rejection = open_entry(entry, work / "submissions", spec.submission)
    if opened is None:
        raise HarnessError(f"the submission of run {run_id} at {source} cannot be opened now: {rejection}")
    if opened.content_hash != run.content_hash:
        raise HarnessError(
            f"the submission at {source} changed since run {run_id} (content {opened.content_hash[:12]}, recorded "
            f"{run.content_hash[:12]}); a changed submission is a new one: `harness run` evaluates it"
        )
    record = evaluate_opened(
        spec,
        opened,
        phase=run.phase,
        artifacts_dir=work / "artifacts",
        sandbox=sandbox,
        team=run.team,
        inputs=task_inputs(spec, run.phase),
    )
    return _compare(spec, run, record)


def _compare(spec: TaskSpec, run: ScoredRun, record: RunRecord) -> Verification:
    then: dict[str, Any] = dict(run.provenance.get("inputs") or {})
    now: dict[str, Any] = dict(record.provenance.get("inputs") or {})
    old_sha = then.get("predictions") or file_sha256(kept_predictions_path(spec, run.artifacts_dir))
    new_sha = file_sha256(kept_predictions_path(spec, record.artifacts_dir))
    neither = not old_sha and not new_sha  # the code failed the same way: no predictions then or now
    identical = old_sha == new_sha
    differences = []
    if not then:
        differences.append("the run recorded no inputs (scored before provenance was kept): causes cannot be told")
    changed = []
    for name in ("evaluator", "spec", "input", "image_id"):
        if then and then.get(name) and now.get(name) and then.get(name) != now.get(name):
            changed.append(name)
    if then and (then.get("reference") or {}).get(run.phase) != (now.get("reference") or {}).get(run.phase):
        changed.append("reference")
    if neither:  # no evaluator, spec or reference touched a run that wrote nothing: only its inputs matter
        changed = [name for name in changed if name in ("input", "image_id")]
    differences += [_INPUT_NAMES[name] for name in changed]
    if not identical and then and not {"input", "image_id"} & set(changed):
        if new_sha:
            differences.append(
                "the predictions differ although the input data and the image are the same: the team's code is not "
                "deterministic (e.g. an unseeded random generator, or output depending on time or order)"
            )
        else:
            differences.append(f"no {spec.predictions.file} was written this time ({record.status}: {record.reason})")
    if identical and run.scores != record.scores and not {"evaluator", "reference", "spec"} & set(changed):
        differences.append("same predictions, other scores, same evaluator and reference: the evaluator is not "
                           "deterministic")  # fmt: skip
    return Verification(
        run_id=run.run_id,
        team=run.team,
        identical_predictions=identical,
        no_predictions=neither,
        old_exit_code=run.exit_code,
        new_exit_code=record.exit_code,
        scores_equal=run.scores == record.scores,
        old_scores=run.scores,
        new_scores=record.scores,
        old_status=str(run.status),
        new_status=str(record.status),
        new_reason=record.reason,
        differences=differences,
        artifacts_dir=record.artifacts_dir,
    )
