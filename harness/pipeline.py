"""Evaluate one submission: sandbox run -> output validation -> scoring -> a :class:`RunRecord`.

:func:`evaluate_opened` is a pure function of (task spec, opened submission, phase, sandbox): it touches no store,
so it runs in a thread, a process or on a Dask worker. Judges (``harness run``), task authors
(``harness task validate``) and teams (``harness check``) all go through it; only the phase differs.

Inside the sandbox a submission sees:

* ``/submission`` (read-only): the opened, normalised submission;
* ``/input`` (read-only): the phase's input data (features only; never the hidden reference);
* ``/output`` (writable, capped at ``limits.output_mb``): where it writes ``predictions.csv``;
* ``/notebook`` (notebooks only; writable, its own cap :data:`~harness.notebooks.NOTEBOOK_AREA_MB`): where papermill
  saves the executed notebook. It is the harness's record, not the team's output: it never counts against
  ``output_mb``, so what a notebook displays never costs the team its predictions.

Notebooks are executed by papermill inside the container with the kernel named in the spec, under
:mod:`harness.notebook_runner` (outputs capped as they are recorded, the notebook saved atomically); the harness's
parameters (``input_dir``, ``output_dir`` and the spec's ``parameters``) are injected after the cell tagged
``parameters``. Scripts run the spec's command in ``/submission`` with ``HARNESS_INPUT_DIR`` and
``HARNESS_OUTPUT_DIR`` set. Success is judged by the outputs that must exist, never by an exit code alone.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import stat
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import EngineUnavailableError, EvaluatorError, InvalidOutputError, SandboxError
from harness.notebooks import (
    EXECUTED_NOTEBOOK,
    NOTEBOOK_AREA_MB,
    ExecutedNotebook,
    read_executed,
    runner_command,
    truncate_notebook_outputs,
)
from harness.notebooks import NOTEBOOK_CELL_CAP_CHARS as NOTEBOOK_CELL_CAP_CHARS
from harness.notebooks import NOTEBOOK_OUTPUT_CAP_CHARS as NOTEBOOK_OUTPUT_CAP_CHARS
from harness.notebooks import NOTEBOOK_OUTPUTS_PER_CELL as NOTEBOOK_OUTPUTS_PER_CELL
from harness.reasons import ReasonContext, hint_for, last_exception, readme_inputs_section
from harness.record import RunRecord
from harness.sandbox import ArtifactArea, Mount, RunOutcome, RunRequest, RunResult, Sandbox, get_sandbox
from harness.spec import PHASES, TaskSpec
from harness.status import Status
from harness.submission import OpenedSubmission, open_submission
from harness.version import __version__

if TYPE_CHECKING:
    from harness.scoring import EvaluatorPool

__all__ = ["EXECUTED_NOTEBOOK", "RunRecord", "evaluate_opened", "evaluate_submission", "truncate_notebook_outputs"]

log = logging.getLogger(__name__)

SUBMISSION_TARGET = "/submission"
INPUT_TARGET = "/input"
OUTPUT_TARGET = "/output"
#: Where the executed notebook's own area appears in the sandbox (notebooks only).
NOTEBOOK_TARGET = "/notebook"
#: The host folder of that area, inside a run's artifacts folder (removed after the run).
NOTEBOOK_AREA_DIR = ".notebook-area"


def _kernel_language(kernel: str) -> str | None:
    """The language of a kernel the harness runs notebooks with (``python3`` -> ``python``), or ``None``.

    papermill needs a language to inject parameters; it reads it from the notebook's metadata unless told, and an
    nbformat 3 notebook or one saved without a kernelspec has none. The harness runs every notebook with the task's
    kernel, so it names that kernel's language itself.
    """
    return "python" if kernel.startswith("python") else None


def build_command(spec: TaskSpec, opened: OpenedSubmission) -> tuple[str, ...]:
    """The argv run inside the sandbox for a submission (paths are the sandbox's: /submission, /input, /output).

    A notebook runs papermill under :mod:`harness.notebook_runner` (:func:`harness.notebooks.runner_command`),
    saving the executed notebook into its own area at ``/notebook``.
    """
    if opened.kind == "notebook":
        parameters: dict[str, Any] = dict(spec.parameters)
        parameters.update(input_dir=INPUT_TARGET, output_dir=OUTPUT_TARGET)
        return runner_command(
            (
                f"{SUBMISSION_TARGET}/{opened.entry}",
                f"{NOTEBOOK_TARGET}/{EXECUTED_NOTEBOOK}",
                "--kernel",
                spec.submission.kernel,
                *(("--language", language) if (language := _kernel_language(spec.submission.kernel)) else ()),
                "--cwd",
                SUBMISSION_TARGET,
                "--parameters_yaml",
                json.dumps(parameters, sort_keys=True),
                "--request-save-on-cell-execute",
                "--no-progress-bar",
                "--log-output",
            )
        )
    return tuple(spec.submission.command)


def _environment(spec: TaskSpec) -> tuple[tuple[str, str], ...]:
    env = {"HARNESS_INPUT_DIR": INPUT_TARGET, "HARNESS_OUTPUT_DIR": OUTPUT_TARGET, "HARNESS_TASK": spec.id}
    for name, value in spec.parameters.items():
        env[f"HARNESS_PARAM_{name.upper()}"] = str(value)
    return tuple(sorted(env.items()))


def _log_tail(log_text: str, lines: int = 5) -> str:
    tail = [line for line in log_text.strip().splitlines() if line.strip()][-lines:]
    return " | ".join(line.strip()[:200] for line in tail)


def _predictions_state(spec: TaskSpec, output_dir: Path, result: RunResult) -> str:
    """What the run had left at the predictions file's path, for a stopped run's reason (links not followed)."""
    name = spec.predictions.file
    kind = dict(result.dropped).get(name)
    if kind:
        return f"{name} had been made as a {kind}, not a regular file"
    try:
        info = (output_dir / name).lstat()
    except OSError:
        return f"{name} had not been written yet"
    if not stat.S_ISREG(info.st_mode):
        return f"{name} had been made, but not as a regular file"
    return (
        f"{name} had already been written ({info.st_size:,} bytes), but a run that does not finish is not scored: "
        "make it end within the limit"
    )


def reason_context(spec: TaskSpec, input_dir: Path) -> ReasonContext:
    """What a failed run's hints may name (:mod:`harness.reasons`): the phase's inputs, the image's packages, the
    README's section on the inputs."""
    from harness.images import image_packages

    return ReasonContext(
        input_dir=input_dir,
        packages=image_packages(spec.image.packages),
        readme_section=readme_inputs_section(spec.task_dir),
    )


def _script_hint(opened: OpenedSubmission, log_text: str, context: ReasonContext) -> str:
    """The hint (:func:`harness.reasons.hint_for`) for the last traceback of a script's log, or ``""``."""
    found = last_exception(log_text)
    if found is None:
        return ""
    ename, evalue, traceback = found
    try:
        entry = (opened.root / opened.entry).read_text(encoding="utf-8", errors="replace")[:200_000]
    except OSError:
        entry = ""
    hint = hint_for(ename, evalue, traceback, f"{traceback}\n{entry}", context)
    shown = f"{ename}: {evalue}".rstrip(": ")
    return f"{shown[:300]}; {hint}" if hint else ""


def _classify(
    spec: TaskSpec,
    opened: OpenedSubmission,
    result: RunResult,
    notebook: ExecutedNotebook,
    output_dir: Path,
    input_dir: Path,
) -> tuple[Status, str] | None:
    """Map a sandbox result to (status, reason), or None when outputs should be validated and scored.

    A run that exited with an error gets the hint of :mod:`harness.reasons` for its exception, if one applies.
    """
    limits = spec.limits
    where = notebook.last_started_cell if opened.kind == "notebook" else ""
    if result.outcome is RunOutcome.TIMED_OUT:
        state = _predictions_state(spec, output_dir, result)
        return Status.TIMED_OUT, f"ran past the time limit of {limits.time_s:g} s{where} and was stopped; {state}"
    if result.outcome is RunOutcome.OUT_OF_MEMORY:
        return Status.OUT_OF_MEMORY, f"used more than the memory limit of {limits.memory_mb} MB{where} and was killed"
    if result.outcome is RunOutcome.OUTPUT_LIMIT:
        return Status.FAILED, (
            f"filled output_dir up to its limit of {limits.output_mb} MB (writes past it fail with 'No space left on "
            "device'); write only the predictions file and small artifacts there"
        )
    if result.exit_code != 0:
        context = reason_context(spec, input_dir)
        if opened.kind == "notebook":
            failure = notebook.failure(context)
            if failure:
                return Status.FAILED, failure
            if "DeadKernelError" in result.log or "Kernel died" in result.log:
                return Status.FAILED, (
                    f"the kernel died{where}: the process running your cells exited or was killed "
                    "(e.g. by os._exit(), os.kill() or a crash in compiled code)"
                )
        log_text = result.log_tail if result.log_truncated and result.log_tail else result.log
        hinted = _script_hint(opened, log_text, context) if opened.kind == "script" else ""
        if hinted:  # the exception line, then what to do about it
            return Status.FAILED, f"exited with code {result.exit_code}: {hinted}"
        detail = _log_tail(log_text)
        return Status.FAILED, f"exited with code {result.exit_code}" + (f": {detail}" if detail else "")
    return None


def evaluate_opened(
    spec: TaskSpec,
    opened: OpenedSubmission,
    *,
    phase: str,
    artifacts_dir: Path,
    sandbox: str | Sandbox = "docker",
    team: str = "",
    image: str | None = None,
    evaluators: EvaluatorPool | None = None,
    inputs: dict[str, Any] | None = None,
) -> RunRecord:
    """Run an opened submission in a sandbox, validate its outputs and score them.

    Failures of the team's code are data: they come back as a record with a status and a reason, never raised.

    Args:
        spec: the task.
        opened: the submission, opened with :func:`harness.submission.open_submission`.
        phase: ``validation`` (self-check; scored against validation labels) or ``test`` (judging; hidden
            reference, splits public/private).
        artifacts_dir: an empty folder for this run's log.txt, executed.ipynb and output/.
        sandbox: ``docker`` (default, isolating) or ``process`` (no isolation), or a sandbox instance to share
            between runs (the caller then closes it).
        team: team name for the record.
        image: image to run (default: the task's image, ``spec.image_tag``).
        evaluators: score in a process taken from this pool (the caller creates and closes it); ``None`` starts
            a fresh evaluator process.
        inputs: the task-level hashes of :func:`harness.provenance.task_inputs` (computed once per batch); kept as
            ``provenance["inputs"]`` with the run's ``image_id`` and ``predictions`` added. ``None``: not recorded.

    Returns:
        The :class:`RunRecord`; once the sandbox ran, its ``provenance["stages"]`` holds the seconds of
        ``sandbox_start``, ``command``, ``collect`` and (when scored) ``score``.

    Raises:
        ValueError: an unknown phase.
        EngineUnavailableError, ImageError: the sandbox cannot run at all (configuration, not the team's fault).
    """
    if phase not in PHASES:
        raise ValueError(f"unknown phase {phase!r}; expected one of {PHASES}")
    began = time.monotonic()
    started = dt.datetime.now(dt.UTC)
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    output_dir = artifacts_dir / "output"
    if output_dir.exists():
        shutil.rmtree(output_dir)
    output_dir.mkdir()
    limits = spec.sandbox_limits()
    record = RunRecord(
        task_id=spec.id,
        phase=phase,
        team=team or opened.team or "",
        content_hash=opened.content_hash,
        kind=opened.kind,
        status=Status.HARNESS_ERROR,
        started_at=started,
        limits={k: float(v) for k, v in asdict(limits).items()},
        artifacts_dir=str(artifacts_dir),
        notes=list(opened.notes),
        provenance={
            "submission_hash": opened.content_hash,
            "spec_hash": spec.spec_hash,
            "evaluator": spec.evaluator.path,
            "harness_version": __version__,
            "sandbox": sandbox if isinstance(sandbox, str) else sandbox.name,
            "phase": phase,
        },
    )
    if inputs is not None:
        record.provenance["inputs"] = {**inputs, "image_id": "", "predictions": ""}
    input_dir = spec.input_dir(phase)
    if not input_dir.is_dir():
        record.reason = f"the task's {phase} input {input_dir} is missing; run `harness task prepare {spec.task_dir}`"
        record.finished_at = dt.datetime.now(dt.UTC)
        return record
    notebook_area: Path | None = None
    if opened.kind == "notebook":  # the executed notebook's own area: not the team's output, not its cap
        notebook_area = artifacts_dir / NOTEBOOK_AREA_DIR
        if notebook_area.exists():
            shutil.rmtree(notebook_area)
        notebook_area.mkdir()
    request = RunRequest(
        image=image or spec.image_tag,
        command=build_command(spec, opened),
        output_dir=output_dir,
        mounts=(
            Mount(opened.root.resolve(), SUBMISSION_TARGET, read_only=True),
            Mount(input_dir.resolve(), INPUT_TARGET, read_only=True),
        ),
        limits=limits,
        workdir=SUBMISSION_TARGET,
        env=_environment(spec),
        output_target=OUTPUT_TARGET,
        label=f"{spec.id}/{record.team or '-'}/{opened.content_hash[:12]}/{phase}",
        artifact_area=(
            ArtifactArea(notebook_area.resolve(), NOTEBOOK_TARGET, NOTEBOOK_AREA_MB) if notebook_area else None
        ),
    )
    runner = get_sandbox(sandbox) if isinstance(sandbox, str) else sandbox
    before_run = time.monotonic()
    try:
        result = runner.run(request)
    except EngineUnavailableError:
        raise
    except SandboxError as exc:
        record.reason = f"the sandbox failed: {exc}"
        record.finished_at = dt.datetime.now(dt.UTC)
        (artifacts_dir / "log.txt").write_text(exc.log_tail or "", encoding="utf-8")
        if notebook_area is not None:
            shutil.rmtree(notebook_area, ignore_errors=True)
        return record
    finally:
        if isinstance(sandbox, str):
            runner.close()
    after_run = time.monotonic()
    stages = dict(result.stages)  # the sandbox's own: sandbox_start, command, collect
    stages["sandbox_start"] = round(stages.get("sandbox_start", 0.0) + before_run - began, 3)
    record.provenance["stages"] = stages
    (artifacts_dir / "log.txt").write_text(result.log, encoding="utf-8")
    record.duration_s = result.duration_s
    record.peak_memory_mb = result.peak_memory_mb
    record.exit_code = result.exit_code
    record.provenance["image_id"] = result.image_id
    if inputs is not None:
        record.provenance["inputs"]["image_id"] = result.image_id or ""
    record.notes.extend(result.warnings)  # e.g. "does not isolate" (process) or "output size polled" (no root)
    if result.dropped:
        shown = ", ".join(f"{path} ({kind})" for path, kind in result.dropped[:5])
        more = f" and {len(result.dropped) - 5} more" if len(result.dropped) > 5 else ""
        record.notes.append(
            f"not kept from output_dir, as they are not regular files (nothing they point at was read): {shown}{more}"
        )
    notebook = ExecutedNotebook(None)
    if notebook_area is not None:
        produced = notebook_area / EXECUTED_NOTEBOOK
        if produced.is_file() and not produced.is_symlink():
            shutil.move(str(produced), artifacts_dir / EXECUTED_NOTEBOOK)
            # parsed once, outputs capped; an unreadable file is replaced by the submitted cells under a marker
            notebook = read_executed(artifacts_dir / EXECUTED_NOTEBOOK, submitted=opened.root / opened.entry)
        shutil.rmtree(notebook_area, ignore_errors=True)
    stages["collect"] = round(stages.get("collect", 0.0) + time.monotonic() - after_run, 3)

    classified = _classify(spec, opened, result, notebook, output_dir, input_dir)
    if classified is not None:
        record.status, record.reason = classified
        record.finished_at = dt.datetime.now(dt.UTC)
        return record

    dropped_kind = dict(result.dropped).get(spec.predictions.file)
    if dropped_kind:  # the sandbox dropped it: say what it was, not that it was never written
        from harness.scoring.predictions import not_a_regular_file

        refusal = not_a_regular_file(spec.predictions.file, dropped_kind)
        record.status = Status.INVALID_OUTPUT
        record.problems = list(refusal.problems)
        record.reason = refusal.problems[0]
        record.finished_at = dt.datetime.now(dt.UTC)
        return record

    from harness.scoring import score_outputs

    if inputs is not None:
        from harness.provenance import file_sha256

        record.provenance["inputs"]["predictions"] = file_sha256(output_dir / spec.predictions.file)
    scoring_started = time.monotonic()
    try:
        record.scores = score_outputs(spec, output_dir, phase, pool=evaluators)
        record.status = Status.SUCCEEDED
    except InvalidOutputError as exc:
        record.status = Status.INVALID_OUTPUT
        record.problems = list(exc.problems)
        record.reason = exc.problems[0] if exc.problems else exc.message
        if len(exc.problems) > 1:
            record.reason += f" (and {len(exc.problems) - 1} more problem(s))"
        exited = notebook.exit_cell_name
        if exited:
            record.reason += f"; {exited} called sys.exit(), which ends the run: the cells after it did not run"
    except EvaluatorError as exc:
        record.status = Status.EVALUATOR_ERROR
        record.reason = exc.message
        record.problems = [exc.detail] if exc.detail else []
    record.provenance["scoring_s"] = stages["score"] = round(time.monotonic() - scoring_started, 3)
    record.finished_at = dt.datetime.now(dt.UTC)
    return record


def evaluate_submission(
    spec: TaskSpec,
    submission_path: Path,
    *,
    phase: str,
    sandbox: str = "docker",
    work_dir: Path | None = None,
    team: str = "",
) -> RunRecord:
    """Open a submission (folder, .zip, .tar.gz or .ipynb) and evaluate it; see :func:`evaluate_opened`.

    Args:
        work_dir: folder for the opened submission and the artifacts (default: a new temporary folder that the
            caller owns and should remove).

    Raises:
        SubmissionError: the submission cannot be opened (unsafe archive, no entry point, invalid notebook).
    """
    import tempfile

    work = Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix="harness-run-"))
    work.mkdir(parents=True, exist_ok=True)
    opened = open_submission(Path(submission_path), work / "submission", spec.submission)
    return evaluate_opened(spec, opened, phase=phase, artifacts_dir=work / "artifacts", sandbox=sandbox, team=team)
