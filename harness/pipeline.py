"""Evaluate one submission: sandbox run -> output validation -> scoring -> a :class:`RunRecord`.

:func:`evaluate_opened` is a pure function of (task spec, opened submission, phase, sandbox): it touches no store,
so it runs in a thread, a process or on a Dask worker. Judges (``harness run``), task authors
(``harness task validate``) and teams (``harness check``) all go through it; only the phase differs.

Inside the sandbox a submission sees:

* ``/submission`` (read-only): the opened, normalised submission;
* ``/input`` (read-only): the phase's input data (features only; never the hidden reference);
* ``/output`` (writable, capped at ``limits.output_mb``): where it writes ``predictions.csv``.

Notebooks are executed by papermill inside the container with the kernel named in the spec; the harness's
parameters (``input_dir``, ``output_dir`` and the spec's ``parameters``) are injected after the cell tagged
``parameters``. Scripts run the spec's command in ``/submission`` with ``HARNESS_INPUT_DIR`` and
``HARNESS_OUTPUT_DIR`` set. Success is judged by the outputs that must exist, never by an exit code alone.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from harness.errors import EngineUnavailableError, EvaluatorError, InvalidOutputError, SandboxError
from harness.sandbox import Mount, RunOutcome, RunRequest, RunResult, Sandbox, get_sandbox
from harness.spec import PHASES, TaskSpec
from harness.submission import OpenedSubmission, open_submission

__all__ = ["EXECUTED_NOTEBOOK", "RunRecord", "evaluate_opened", "evaluate_submission", "truncate_notebook_outputs"]

log = logging.getLogger(__name__)

#: File name (in the output folder) of the executed notebook; reserved.
EXECUTED_NOTEBOOK = "executed.ipynb"
#: Cap on the text kept per output of the executed notebook kept for judges (characters).
NOTEBOOK_OUTPUT_CAP_CHARS = 20_000
#: Cap on the text kept per cell of the executed notebook, over all its outputs (characters).
NOTEBOOK_CELL_CAP_CHARS = 60_000
#: Cap on the number of outputs kept per cell of the executed notebook.
NOTEBOOK_OUTPUTS_PER_CELL = 50

SUBMISSION_TARGET = "/submission"
INPUT_TARGET = "/input"
OUTPUT_TARGET = "/output"


@dataclass
class RunRecord:
    """The outcome of evaluating one submission in one phase (picklable; no store involved).

    Attributes:
        task_id: the task's id.
        phase: ``validation`` or ``test``.
        team: the team name as given by the caller or the submission's team.yaml (may be ``""``).
        content_hash: sha256 of the normalised submission.
        kind: ``notebook`` or ``script``.
        status: one of :data:`harness.store.FINAL_STATUSES`.
        reason: one line a team can act on (``""`` on success).
        problems: every output problem found (invalid_output), one sentence each.
        scores: split -> metric -> value (empty unless succeeded).
        started_at / finished_at: UTC timestamps of the whole evaluation.
        duration_s: wall-clock seconds of the sandboxed command.
        peak_memory_mb: peak memory of the sandbox in MiB (None if unknown).
        exit_code: the command's exit code (None if killed).
        limits: the limits applied (time_s, memory_mb, ...), for resource-use reports.
        artifacts_dir: folder holding log.txt, executed.ipynb (notebooks), output/ (predictions).
        provenance: submission hash, spec hash, evaluator file, image id, harness version, sandbox.
        notes: non-fatal remarks (nbformat upgraded, kernel name replaced, ...).
    """

    task_id: str
    phase: str
    team: str
    content_hash: str
    kind: str
    status: str
    reason: str = ""
    problems: list[str] = field(default_factory=list)
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    started_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    finished_at: dt.datetime | None = None
    duration_s: float | None = None
    peak_memory_mb: float | None = None
    exit_code: int | None = None
    limits: dict[str, float] = field(default_factory=dict)
    artifacts_dir: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        """True when the run was scored."""
        return self.status == "succeeded"

    @property
    def log_path(self) -> Path | None:
        """The run's capped log, if it was written."""
        path = Path(self.artifacts_dir) / "log.txt"
        return path if self.artifacts_dir and path.is_file() else None

    @property
    def notebook_path(self) -> Path | None:
        """The executed notebook (outputs capped), if there is one."""
        path = Path(self.artifacts_dir) / EXECUTED_NOTEBOOK
        return path if self.artifacts_dir and path.is_file() else None

    def to_json(self) -> str:
        """The record as JSON (timestamps ISO 8601)."""
        return json.dumps(asdict(self), default=str, indent=2, sort_keys=True)


def _harness_version() -> str:
    from harness import __version__

    return __version__


def _kernel_language(kernel: str) -> str | None:
    """The language of a kernel the harness runs notebooks with (``python3`` -> ``python``), or ``None``.

    papermill needs a language to inject parameters; it reads it from the notebook's metadata unless told, and an
    nbformat 3 notebook or one saved without a kernelspec has none. The harness runs every notebook with the task's
    kernel, so it names that kernel's language itself.
    """
    return "python" if kernel.startswith("python") else None


def build_command(spec: TaskSpec, opened: OpenedSubmission) -> tuple[str, ...]:
    """The argv run inside the sandbox for a submission (paths are the sandbox's: /submission, /input, /output)."""
    if opened.kind == "notebook":
        parameters: dict[str, Any] = dict(spec.parameters)
        parameters.update(input_dir=INPUT_TARGET, output_dir=OUTPUT_TARGET)
        return (
            "python",
            "-m",
            "papermill",
            f"{SUBMISSION_TARGET}/{opened.entry}",
            f"{OUTPUT_TARGET}/{EXECUTED_NOTEBOOK}",
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
    return tuple(spec.submission.command)


def _environment(spec: TaskSpec) -> tuple[tuple[str, str], ...]:
    env = {"HARNESS_INPUT_DIR": INPUT_TARGET, "HARNESS_OUTPUT_DIR": OUTPUT_TARGET, "HARNESS_TASK": spec.id}
    for name, value in spec.parameters.items():
        env[f"HARNESS_PARAM_{name.upper()}"] = str(value)
    return tuple(sorted(env.items()))


def truncate_notebook_outputs(
    path: Path, *, cap_chars: int = NOTEBOOK_OUTPUT_CAP_CHARS, cell_cap_chars: int = NOTEBOOK_CELL_CAP_CHARS
) -> int:
    """Cap the outputs of an executed notebook in place, so judges can open it.

    Each text output keeps at most ``cap_chars`` characters, and each cell at most ``cell_cap_chars`` characters
    of text over all its outputs and at most :data:`NOTEBOOK_OUTPUTS_PER_CELL` outputs; a marker says what was
    cut. Rich outputs (images, HTML) larger than 50 times ``cap_chars`` are replaced by a marker. A file that is
    not a readable notebook is left as it is (a partial notebook is still evidence).

    Returns:
        The number of outputs cut or dropped.
    """
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:
        log.warning("cannot read executed notebook %s to cap its outputs: %s", path, exc)
        return 0
    cut = 0
    for cell in nb.cells:
        outputs = cell.get("outputs")
        if not outputs:
            continue
        kept: list[nbformat.NotebookNode] = []
        budget = cell_cap_chars
        for index, output in enumerate(outputs):
            if budget <= 0 or len(kept) >= NOTEBOOK_OUTPUTS_PER_CELL:
                dropped = len(outputs) - index
                kept.append(
                    _marker(
                        f"{dropped} more outputs of this cell dropped (cap: {cell_cap_chars} characters, "
                        f"{NOTEBOOK_OUTPUTS_PER_CELL} outputs per cell)"
                    )
                )
                cut += dropped
                break
            if "text" in output:
                allowed = min(cap_chars, budget)
                if len(output["text"]) > allowed:
                    output["text"] = (
                        output["text"][:allowed] + f"\n[harness: output truncated at {allowed} characters]\n"
                    )
                    cut += 1
                budget -= len(output["text"])
            for mime, data in list(output.get("data", {}).items()):
                if isinstance(data, str) and len(data) > cap_chars * 50:
                    output["data"][mime] = f"[harness: {mime} output of {len(data)} characters dropped]"
                    cut += 1
            kept.append(output)
        cell["outputs"] = kept
    if cut:
        nbformat.write(nb, path)
    return cut


def _marker(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_output("stream", name="stderr", text=f"[harness: {text}]\n")


def _team_cells(nb: nbformat.NotebookNode) -> list[tuple[int, nbformat.NotebookNode]]:
    """The team's cells with their 1-based position in the team's own file (cells papermill added skipped)."""
    added = {"injected-parameters", "papermill-error-cell-tag"}
    cells = [c for c in nb.cells if not added & set(c.get("metadata", {}).get("tags", []))]
    return list(enumerate(cells, start=1))


#: What to do about errors that come from running unattended rather than from the team's logic.
_ERROR_HINTS = {
    "StdinNotImplementedError": "input() cannot be answered: a judging run has no keyboard (no stdin); set the "
    "value in your parameters cell or read it from a file",
}


def _read_executed(path: Path | None) -> nbformat.NotebookNode | None:
    """The executed notebook, or None when there is none or it cannot be read (a killed run may leave it partial)."""
    if path is None or not path.is_file():
        return None
    try:
        return nbformat.read(path, as_version=4)
    except Exception:
        return None


def _notebook_failure(path: Path | None) -> str:
    """The first error in an executed notebook, as ``cell #N of your notebook raised Name: value``; ``""`` if none."""
    nb = _read_executed(path)
    if nb is None:
        return ""
    for position, cell in _team_cells(nb):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                ename, evalue = output.get("ename", "Error"), str(output.get("evalue", ""))[:300]
                if ename == "SystemExit":
                    continue  # sys.exit() is judged by the outputs it left, not as an error
                hint = _ERROR_HINTS.get(ename)
                reason = f"cell #{position} of your notebook raised {ename}: {evalue}".rstrip(": ")
                return f"{reason.rstrip('.')}; {hint}" if hint else reason
    return ""


def _exit_cell(path: Path | None) -> int:
    """The position of the team's cell that called ``sys.exit()`` (0 if none): the cells after it did not run."""
    nb = _read_executed(path)
    if nb is None:
        return 0
    for position, cell in _team_cells(nb):
        if any(o.get("output_type") == "error" and o.get("ename") == "SystemExit" for o in cell.get("outputs", [])):
            return position
    return 0


def _last_started_cell(path: Path | None) -> str:
    """`` while cell #N of your notebook was running`` for the cell a stopped run was in; ``""`` if unknown.

    A run killed from outside leaves its cell marked ``running``. When the kernel dies instead (the OOM killer,
    ``os.kill``), papermill marks that cell ``completed`` and stops, so the last cell that started is the one.
    """
    nb = _read_executed(path)
    if nb is None:
        return ""
    started = 0
    for position, cell in _team_cells(nb):
        state = cell.get("metadata", {}).get("papermill", {})
        if state.get("status") == "running":
            return f" while cell #{position} of your notebook was running"
        if state.get("start_time"):
            started = position
    return f" while cell #{started} of your notebook was running" if started else ""


def _log_tail(log_text: str, lines: int = 5) -> str:
    tail = [line for line in log_text.strip().splitlines() if line.strip()][-lines:]
    return " | ".join(line.strip()[:200] for line in tail)


def _classify(
    spec: TaskSpec, opened: OpenedSubmission, result: RunResult, notebook: Path | None
) -> tuple[str, str] | None:
    """Map a sandbox result to (status, reason), or None when outputs should be validated and scored."""
    limits = spec.limits
    where = _last_started_cell(notebook) if opened.kind == "notebook" else ""
    if result.outcome is RunOutcome.TIMED_OUT:
        return "timed_out", f"ran past the time limit of {limits.time_s:g} s{where} and was stopped"
    if result.outcome is RunOutcome.OUT_OF_MEMORY:
        return "out_of_memory", f"used more than the memory limit of {limits.memory_mb} MB{where} and was killed"
    if result.outcome is RunOutcome.OUTPUT_LIMIT:
        notebook_bytes = notebook.stat().st_size if notebook is not None else 0
        if notebook_bytes > result.output_bytes - notebook_bytes:  # papermill's record, not the team's files
            return "failed", (
                f"printed or displayed so much that the executed notebook, which keeps every output of your "
                f"cells, grew past the output limit of {limits.output_mb} MB{where}, and the run was stopped; "
                "print less (a summary or the last lines instead of every row or step)"
            )
        return "failed", (
            f"filled output_dir up to its limit of {limits.output_mb} MB (writes past it fail with 'No space left on "
            "device'); write only the predictions file and small artifacts there"
        )
    if result.exit_code != 0:
        if opened.kind == "notebook":
            failure = _notebook_failure(notebook)
            if failure:
                return "failed", failure
            if "DeadKernelError" in result.log or "Kernel died" in result.log:
                return "failed", (
                    f"the kernel died{where}: the process running your cells exited or was killed "
                    "(e.g. by os._exit(), os.kill() or a crash in compiled code)"
                )
        detail = _log_tail(result.log_tail if result.log_truncated and result.log_tail else result.log)
        return "failed", f"exited with code {result.exit_code}" + (f": {detail}" if detail else "")
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

    Returns:
        The :class:`RunRecord`.

    Raises:
        ValueError: an unknown phase.
        EngineUnavailableError, ImageError: the sandbox cannot run at all (configuration, not the team's fault).
    """
    if phase not in PHASES:
        raise ValueError(f"unknown phase {phase!r}; expected one of {PHASES}")
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
        status="harness_error",
        started_at=started,
        limits={k: float(v) for k, v in asdict(limits).items()},
        artifacts_dir=str(artifacts_dir),
        notes=list(opened.notes),
        provenance={
            "submission_hash": opened.content_hash,
            "spec_hash": spec.spec_hash,
            "evaluator": spec.evaluator.path,
            "harness_version": _harness_version(),
            "sandbox": sandbox if isinstance(sandbox, str) else sandbox.name,
            "phase": phase,
        },
    )
    input_dir = spec.input_dir(phase)
    if not input_dir.is_dir():
        record.reason = f"the task's {phase} input {input_dir} is missing; run `harness task prepare {spec.task_dir}`"
        record.finished_at = dt.datetime.now(dt.UTC)
        return record
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
    )
    runner = get_sandbox(sandbox) if isinstance(sandbox, str) else sandbox
    try:
        result = runner.run(request)
    except EngineUnavailableError:
        raise
    except SandboxError as exc:
        record.reason = f"the sandbox failed: {exc}"
        record.finished_at = dt.datetime.now(dt.UTC)
        (artifacts_dir / "log.txt").write_text(exc.log_tail or "", encoding="utf-8")
        return record
    finally:
        if isinstance(sandbox, str):
            runner.close()
    (artifacts_dir / "log.txt").write_text(result.log, encoding="utf-8")
    record.duration_s = result.duration_s
    record.peak_memory_mb = result.peak_memory_mb
    record.exit_code = result.exit_code
    record.provenance["image_id"] = result.image_id
    record.notes.extend(result.warnings)  # e.g. "does not isolate" (process) or "output size polled" (no root)
    notebook: Path | None = None
    produced = output_dir / EXECUTED_NOTEBOOK
    if opened.kind == "notebook" and produced.is_file():
        notebook = artifacts_dir / EXECUTED_NOTEBOOK
        shutil.move(str(produced), notebook)
        truncate_notebook_outputs(notebook)

    classified = _classify(spec, opened, result, notebook)
    if classified is not None:
        record.status, record.reason = classified
        record.finished_at = dt.datetime.now(dt.UTC)
        return record

    from harness.scoring import score_outputs

    scoring_started = time.monotonic()
    try:
        record.scores = score_outputs(spec, output_dir, phase)
        record.status = "succeeded"
    except InvalidOutputError as exc:
        record.status = "invalid_output"
        record.problems = list(exc.problems)
        record.reason = exc.problems[0] if exc.problems else exc.message
        if len(exc.problems) > 1:
            record.reason += f" (and {len(exc.problems) - 1} more problem(s))"
        exited = _exit_cell(notebook)
        if exited:
            record.reason += (
                f"; cell #{exited} of your notebook called sys.exit(), which ends the run: the cells after it did "
                "not run"
            )
    except EvaluatorError as exc:
        record.status = "evaluator_error"
        record.reason = exc.message
        record.problems = [exc.detail] if exc.detail else []
    record.provenance["scoring_s"] = round(time.monotonic() - scoring_started, 3)
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
