"""Task authors' tools: build a task's data (:func:`prepare_task`) and prove a task sound (:func:`validate_task`).

``harness task validate TASK_DIR`` checks, in order: the spec loads and the evaluator imports; the README for
teams, the starter notebook and the baseline exist; the prepared data matches the spec; the hidden reference cannot
reach a sandbox; the reference scored against itself reaches each metric's best value; the baseline and the
starter notebook run through the real pipeline on the validation phase and score; every degenerate submission
(:mod:`harness.tasks_degenerate`) is refused or scores strictly worse than the baseline; and the prepare script is
deterministic (run twice into fresh folders, same file hashes).

Modules: :mod:`harness.tasks_prepare` (the prepare script and its isolated environment), :mod:`harness.tasks_report`
(the report), :mod:`harness.tasks_checks` (the data checks), :mod:`harness.tasks_degenerate` (degenerate
submissions). Their public names are importable from here too.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from harness.errors import EvaluatorError, HarnessError, InvalidOutputError, SpecError
from harness.spec import PHASES, TaskSpec, load_spec
from harness.starter import TEMPLATE_DIR
from harness.status import Status
from harness.tasks_checks import (
    check_data_present,
    check_hidden_isolated,
    check_inputs,
    check_references,
    check_task_files,
)
from harness.tasks_degenerate import Degenerate, degenerate_submissions, perfect_predictions
from harness.tasks_prepare import file_hashes, prepare_environment, prepare_task, run_prepare, summarise_files
from harness.tasks_report import Check, CheckStatus, TaskValidationReport

if TYPE_CHECKING:
    from harness.scoring import EvaluatorPool

__all__ = [
    "Check",
    "CheckStatus",
    "Degenerate",
    "TaskValidationReport",
    "degenerate_submissions",
    "perfect_predictions",
    "prepare_environment",
    "prepare_task",
    "summarise_files",
    "validate_task",
]

logger = logging.getLogger(__name__)

Echo = Callable[[str], Any]

#: Metric values within this distance of a metric's ``best`` count as reaching it.
BEST_TOLERANCE = 1e-9
#: The phase (and so the split) the baseline and the starter notebook are scored on.
VALIDATE_PHASE = "validation"
#: The phase degenerate submissions (and the baseline, to compare) are scored on: the judges' hidden reference. The
#: constants come from the validation reference, which teams can see; scored on that same reference they would be
#: the best constants there are (an oracle), which no honest baseline need beat.
DEGENERATE_PHASE = "test"


def validate_task(task_dir: str | Path, sandbox: str = "docker", echo: Echo = print) -> TaskValidationReport:
    """Prove a task sound: spec, files, data, isolation of the hidden reference, evaluator, baseline, starter
    notebook, degenerate submissions, deterministic prepare.

    Checks, in order: the spec loads; the evaluator imports; ``README.md``, ``starter/<submission.notebook>`` and
    the baseline exist; the prepared data exists (and matches its ``manifest.json`` when there is one); each
    phase's reference has the id column, every target column and the split column with exactly the declared
    splits; each input folder's ``predict_file`` lists the reference's ids and holds no target column; no file
    teams can read (inputs, public) carries labels of a phase's rows to predict or a copy of the hidden reference,
    and the hidden reference lies outside them; the reference scored against itself (in the evaluator's own
    process) reaches each metric's ``best``; the baseline and the starter notebook run through
    :func:`harness.pipeline.evaluate_submission` on the validation phase and are scored; each degenerate
    submission (:func:`harness.tasks_degenerate.degenerate_submissions`) is refused by validation or scores
    strictly worse than the baseline on the primary metric, on the baseline's splits; the prepare script, run
    twice into fresh folders, writes the same files with the same hashes.

    Args:
        task_dir: the task folder.
        sandbox: sandbox for the baseline and starter runs: ``docker`` or ``process``.
        echo: called with a progress line before each step (and the prepare script's output).

    Returns:
        The report; ``report.ok`` is False when any check failed. It never raises for a task problem: each
        becomes a failed check with a detail saying what to fix.
    """
    report = TaskValidationReport(Path(task_dir))
    echo(f"validating {task_dir}")
    try:
        spec = load_spec(task_dir)
    except SpecError as exc:
        report.add("spec loads", "fail", str(exc))
        return report
    report.task_id = spec.id
    report.metrics = [(m.name, m.display_name, m.precision) for m in spec.metrics]
    report.add(
        "spec loads",
        "pass",
        f"{spec.spec_file.name}: {len(spec.metrics)} metrics, primary "
        f"{spec.primary_metric.name}; spec hash {spec.spec_hash[:12]}",
    )

    from harness.scoring import load_evaluator

    try:
        cls = load_evaluator(spec)
        report.add("evaluator imports", "pass", f"{cls.__name__} ({spec.evaluator.mode} mode)")
    except EvaluatorError as exc:
        report.add("evaluator imports", "fail", f"{exc.message}\n{exc.detail}".strip())
        return report
    check_task_files(spec, report)

    echo("checking the prepared data")
    if not check_data_present(spec, report):
        return report
    references = check_references(spec, report)
    check_inputs(spec, report, references)
    check_hidden_isolated(spec, report, references)

    echo("scoring the reference against itself (in the evaluator's own process)")
    for phase in PHASES:
        if phase in references:
            _check_self_score(spec, phase, references[phase], report)

    echo(f"running the baseline on the {VALIDATE_PHASE} phase (sandbox: {sandbox})")
    baseline = _check_run(spec, "baseline", spec.baseline_path, sandbox, report, echo)
    _check_starter(spec, sandbox, report, echo)

    if baseline is not None:
        echo(f"running the baseline on the {DEGENERATE_PHASE} phase, to compare degenerate submissions with")
        baseline = _check_run(spec, "baseline", spec.baseline_path, sandbox, report, echo, DEGENERATE_PHASE)
    echo(f"scoring degenerate submissions on the {DEGENERATE_PHASE} phase")
    _check_degenerate(spec, references.get(DEGENERATE_PHASE), references.get(VALIDATE_PHASE), baseline, report)

    echo("running prepare twice to check it is deterministic")
    _check_deterministic(spec, report, echo)
    return report


def _check_self_score(spec: TaskSpec, phase: str, reference: pd.DataFrame, report: TaskValidationReport) -> None:
    from harness.scoring import score_outputs

    name = f"reference vs itself ({phase})"
    with tempfile.TemporaryDirectory(prefix="harness-selfscore-") as tmp:
        try:
            perfect_predictions(spec, reference).to_csv(Path(tmp) / spec.predictions.file, index=False)
            scores = score_outputs(spec, Path(tmp), phase)
        except KeyError as exc:
            report.add(name, "fail", f"cannot write the perfect predictions: {exc.args[0]}")
            return
        except (EvaluatorError, InvalidOutputError) as exc:
            detail = exc.message if isinstance(exc, EvaluatorError) else str(exc)
            report.add(name, "fail", detail)
            return
    report.scores[f"reference ({phase})"] = scores
    misses = []
    unknown = [m.name for m in spec.metrics if m.best is None]
    for split, values in scores.items():
        for metric in spec.metrics:
            if metric.best is not None and not math.isclose(
                values[metric.name], metric.best, rel_tol=0, abs_tol=BEST_TOLERANCE
            ):
                misses.append(f"{metric.name} on {split} is {values[metric.name]!r}, best is {metric.best!r}")
    if misses:
        report.add(
            name, "fail", "; ".join(misses) + "; the evaluator does not give a perfect prediction its best value"
        )
    elif unknown:
        report.add(name, "warn", f"metric(s) {unknown} declare no best value in task.yaml, so they were not checked")
    else:
        report.add(name, "pass", "every metric reaches its best value on every split")


def _score_table(
    spec: TaskSpec, table: pd.DataFrame, pool: EvaluatorPool | None = None, phase: str = VALIDATE_PHASE
) -> dict[str, dict[str, float]]:
    """Write a prediction table as the spec's file into a temporary folder and score it on ``phase``."""
    from harness.scoring import score_outputs

    with tempfile.TemporaryDirectory(prefix="harness-validate-score-") as tmp:
        table.to_csv(Path(tmp) / spec.predictions.file, index=False)
        return score_outputs(spec, Path(tmp), phase, pool=pool)


def _run_submission(
    spec: TaskSpec, submission: Path, sandbox: str, phase: str = VALIDATE_PHASE
) -> tuple[Status, str, dict[str, dict[str, float]], float]:
    """(status, reason, scores, seconds) of a submission run through the real pipeline on ``phase``."""
    from harness.pipeline import evaluate_submission

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="harness-validate-") as tmp:
        record = evaluate_submission(spec, submission, phase=phase, sandbox=sandbox, work_dir=Path(tmp))
    scores = {split: dict(values) for split, values in record.scores.items()}
    return record.status, record.reason, scores, time.monotonic() - started


def _check_run(
    spec: TaskSpec,
    label: str,
    submission: Path | None,
    sandbox: str,
    report: TaskValidationReport,
    echo: Echo,
    phase: str = VALIDATE_PHASE,
) -> dict[str, dict[str, float]] | None:
    """Run one submission (the baseline, the starter notebook) on ``phase`` and add its check; its scores, or
    ``None``."""
    name = f"{label} ({phase})"
    if submission is None or not submission.exists():
        report.add(name, "skip", f"no {label} to run (see the check 'README, starter, baseline')")
        return None
    try:
        status, reason, scores, took = _run_submission(spec, submission, sandbox, phase)
    except HarnessError as exc:
        report.add(name, "fail", f"{type(exc).__name__}: {exc}")
        return None
    if status is not Status.SUCCEEDED:
        report.add(name, "fail", f"status {status}: {reason}")
        return None
    report.scores[name] = scores
    primary = spec.primary_metric
    shown = ", ".join(
        f"{split}: {primary.name} {values.get(primary.name, float('nan')):.{primary.precision}f}"
        for split, values in scores.items()
    )
    report.add(name, "pass", f"succeeded in {took:.1f} s; {shown}")
    echo(f"{label} scored: {shown}")
    return scores


def _check_starter(spec: TaskSpec, sandbox: str, report: TaskValidationReport, echo: Echo) -> None:
    notebook = spec.task_dir / TEMPLATE_DIR / spec.submission.notebook
    if "notebook" not in spec.submission.kinds:
        report.add(f"starter notebook ({VALIDATE_PHASE})", "skip", "submission.kinds does not accept notebooks")
        return
    echo(f"running the starter notebook {TEMPLATE_DIR}/{spec.submission.notebook} (sandbox: {sandbox})")
    _check_run(spec, "starter notebook", notebook if notebook.is_file() else None, sandbox, report, echo)


def _worse(goal: str, value: float, than: float) -> bool:
    return value > than if goal == "minimize" else value < than


def _check_degenerate(
    spec: TaskSpec,
    reference: pd.DataFrame | None,
    visible: pd.DataFrame | None,
    baseline: dict[str, dict[str, float]] | None,
    report: TaskValidationReport,
) -> None:
    """Each degenerate submission is refused, or scores strictly worse than the baseline on the primary metric.

    ``reference`` is the :data:`DEGENERATE_PHASE` reference (the rows and the truth scored); ``visible`` the
    validation reference, whose statistics (median, mean, majority class) the constants are; ``baseline`` the
    baseline's scores on the :data:`DEGENERATE_PHASE` phase, per split."""
    from harness.scoring import EvaluatorPool

    name = "degenerate submissions"
    if spec.evaluator.mode != "predictions":
        report.add(name, "skip", "evaluator.mode is output_dir: there is no prediction table to make up")
        return
    if reference is None or visible is None:
        report.add(name, "skip", f"the {DEGENERATE_PHASE} or {VALIDATE_PHASE} reference did not load")
        return
    try:
        made = degenerate_submissions(spec, reference, statistics=visible)
    except KeyError as exc:
        report.add(name, "fail", f"cannot make degenerate submissions: {exc.args[0]}")
        return
    primary = spec.primary_metric
    refused: list[str] = []
    problems: list[str] = []
    worse: list[str] = []
    with EvaluatorPool(1) as pool:
        for degenerate in made:
            try:
                scores = _score_table(spec, degenerate.predictions, pool, DEGENERATE_PHASE)
            except InvalidOutputError as exc:
                said = exc.problems[0] if exc.problems else exc.message
                refused.append(f"{degenerate.name} (refused: {said if len(said) <= 160 else said[:157] + '...'})")
                continue
            except EvaluatorError as exc:
                problems.append(f"the evaluator failed on the degenerate submission '{degenerate.name}': {exc.message}")
                continue
            report.scores[f"degenerate: {degenerate.name}"] = scores
            if baseline is None:
                continue
            for split, base_values in baseline.items():
                value, base = scores.get(split, {}).get(primary.name), base_values.get(primary.name)
                if value is None or base is None:
                    continue
                shown = f"{primary.name} {value:.{primary.precision}f} on {split}"
                if _worse(primary.goal, value, base):
                    worse.append(f"{degenerate.name} ({shown})")
                else:
                    problems.append(
                        f"the degenerate submission '{degenerate.name}' scores {shown}, not worse than the "
                        f"baseline's {base:.{primary.precision}f}: improve the baseline or the metric"
                    )
    if problems:
        report.add(name, "fail", "; ".join(problems))
    elif baseline is None:
        report.add(name, "skip", "no baseline score to compare with; scored: " + ", ".join(d.name for d in made))
    else:
        report.add(name, "pass", "; ".join([*refused, *worse]) + "; each refused or worse than the baseline")


def _check_deterministic(spec: TaskSpec, report: TaskValidationReport, echo: Echo) -> None:
    """Run prepare twice into fresh folders; the same files with the same hashes, else the first differing file."""
    name = "prepare is deterministic"
    hashes: list[dict[str, str]] = []
    try:
        for attempt in (1, 2):
            with tempfile.TemporaryDirectory(prefix=f"harness-prepare-{attempt}-") as tmp:
                started = time.monotonic()
                run_prepare(spec, Path(tmp), lambda _line: None)
                hashes.append(file_hashes(Path(tmp)))
                echo(f"prepare run {attempt} finished in {time.monotonic() - started:.1f} s")
    except HarnessError as exc:
        report.add(name, "fail", f"{type(exc).__name__}: {exc}")
        return
    first, second = hashes
    differing = sorted(n for n in set(first) | set(second) if first.get(n) != second.get(n))
    if differing:
        path = differing[0]
        how = "differs" if path in first and path in second else "is written by only one of the two runs"
        report.add(
            name,
            "fail",
            f"{len(differing):,} of {len(set(first) | set(second)):,} files differ between two runs, first: {path} "
            f"({how}); seed every random choice and sort what you write",
        )
    else:
        report.add(name, "pass", f"two runs wrote the same {len(first):,} files, byte for byte")
