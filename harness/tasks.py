"""Task authors' tools: build a task's data (:func:`prepare_task`) and prove a task sound (:func:`validate_task`).

``harness task prepare TASK_DIR`` runs the spec's prepare script into a fresh temporary folder next to the data
root and swaps it in only when the script succeeded, so a failed or interrupted prepare never leaves half a data
folder behind. ``harness task validate TASK_DIR`` checks the spec, the prepared data against the spec, that the
hidden reference cannot reach a sandbox, that the reference scored against itself reaches each metric's best
value, and runs the spec's baseline submission through the real pipeline on the validation phase.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from filelock import FileLock

from harness.errors import EvaluatorError, HarnessError, InvalidOutputError, SpecError
from harness.spec import PHASES, TaskSpec, load_spec
from harness.status import Status

__all__ = ["Check", "TaskValidationReport", "prepare_task", "validate_task"]

logger = logging.getLogger(__name__)

Echo = Callable[[str], Any]
CheckStatus = Literal["pass", "fail", "warn", "skip"]

#: Metric values within this distance of a metric's ``best`` count as reaching it.
BEST_TOLERANCE = 1e-9
_PREPARE_TAIL_LINES = 30


# -- prepare ---------------------------------------------------------------------------------------------------
def _tree_digest(root: Path) -> str:
    """sha256 over every file's relative path and bytes below ``root`` (sorted; links not followed)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(_sha256(path).encode() + b"\0")
    return digest.hexdigest()


def prepare_task(task_dir: str | Path, echo: Echo = print, *, timeout_s: float | None = None) -> Path:
    """Build a task's data by running its prepare script, atomically.

    Runs ``python PREPARE OUT`` with the current interpreter, in the task folder, where ``OUT`` is a fresh
    folder beside the data root. Only when the script exits 0 does ``OUT`` replace the data root; when the new
    data is byte-identical to the old, the old folder is kept untouched (so a sandbox that has it mounted is not
    disturbed). A lock file in the temporary folder serialises concurrent prepares of one task; leftovers of an
    interrupted prepare (``.data.building-*``) are removed under that lock.

    Args:
        task_dir: the task folder (holding task.yaml).
        echo: called with each progress line and each line the script prints.
        timeout_s: stop the script after this many seconds (``None``: no limit).

    Returns:
        The absolute data root (``spec.data_root``), now holding the prepared data.

    Raises:
        SpecError: the spec is invalid, the prepare script is missing, fails, or exceeds ``timeout_s``.
    """
    spec = load_spec(task_dir)
    script = spec.prepare_path
    if not script.is_file():
        raise SpecError(
            f"prepare script {spec.data.prepare!r} does not exist (resolved to {script})",
            str(spec.spec_file),
            "data.prepare",
        )
    root = spec.data_root
    root.parent.mkdir(parents=True, exist_ok=True)
    # The lock lives beside the data it guards (gitignored with it), not in the system temp folder, so preparing a
    # task leaves nothing behind elsewhere.
    with FileLock(str(root.parent / f".{root.name}.prepare.lock")):
        for stale in (*root.parent.glob(f".{root.name}.building-*"), *root.parent.glob(f".{root.name}.old-*")):
            echo(f"removing {stale.name}, left by an interrupted prepare")
            shutil.rmtree(stale, ignore_errors=True)
        build = Path(tempfile.mkdtemp(prefix=f".{root.name}.building-", dir=root.parent))
        try:
            build.chmod(0o755)  # mkdtemp makes 0700; sandboxes run as another user and must read the inputs
            echo(f"preparing {spec.id}: {sys.executable} {spec.data.prepare} {build.name}")
            started = time.monotonic()
            _run_prepare(spec, script, build, echo, timeout_s)
            echo(f"prepare finished in {time.monotonic() - started:.1f} s")
            if root.is_dir() and _tree_digest(root) == _tree_digest(build):
                echo(f"the data is unchanged; kept {root}")
                shutil.rmtree(build)
                return root
            old = root.with_name(f".{root.name}.old-{uuid.uuid4().hex[:8]}")
            if root.exists():
                root.rename(old)
            build.rename(root)
            shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(build, ignore_errors=True)
            raise
    logger.info("prepared %s into %s", spec.id, root)
    return root


def _run_prepare(spec: TaskSpec, script: Path, out: Path, echo: Echo, timeout_s: float | None) -> None:
    """Run the prepare script, echoing its output as it comes; kill its process group on timeout or interrupt."""
    tail: deque[str] = deque(maxlen=_PREPARE_TAIL_LINES)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(out)],
        cwd=spec.task_dir,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
    )

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            tail.append(line.rstrip("\n"))
            echo(f"  {line.rstrip()}")

    reader = threading.Thread(target=pump, name="prepare-output", daemon=True)
    reader.start()
    try:
        returncode = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise SpecError(f"{spec.data.prepare} did not finish within {timeout_s:g} s", str(script)) from None
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        reader.join(timeout=5)
    if returncode != 0:
        shown = "\n".join(tail)
        raise SpecError(
            f"{spec.data.prepare} failed with exit code {returncode}; its last output:\n{shown}", str(script)
        )


# -- validate --------------------------------------------------------------------------------------------------
@dataclass
class Check:
    """One check of :func:`validate_task`.

    Attributes:
        name: what was checked (``"reference (test)"``).
        status: ``pass``, ``fail`` (the task is not sound), ``warn`` (worth a look) or ``skip`` (could not run).
        detail: what was found, or what to fix.
    """

    name: str
    status: CheckStatus
    detail: str = ""


@dataclass
class TaskValidationReport:
    """What :func:`validate_task` found.

    Attributes:
        task_dir: the task folder as given.
        task_id: the spec's id (``None`` when the spec did not load).
        checks: every check in the order run.
        scores: ``{label: {split: {metric: value}}}``, e.g. ``{"reference (validation)": {"validation":
            {"mae": 0.0, ...}}, "baseline (validation)": {...}}``.
        metrics: ``[(name, label, precision), ...]`` in the spec's order, for rendering.
    """

    task_dir: Path
    task_id: str | None = None
    checks: list[Check] = field(default_factory=list)
    scores: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    metrics: list[tuple[str, str, int]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no check failed (warnings and skips do not fail a task)."""
        return not any(c.status == "fail" for c in self.checks)

    def add(self, name: str, status: CheckStatus, detail: str = "") -> Check:
        """Append a check and return it."""
        check = Check(name, status, detail)
        self.checks.append(check)
        return check

    def render(self) -> Any:
        """A rich renderable: the checks table, the scores table and a verdict line."""
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        style = {"pass": "green", "fail": "bold red", "warn": "yellow", "skip": "yellow"}
        checks = Table(title=f"harness task validate {self.task_id or self.task_dir}", title_justify="left")
        checks.add_column("check")
        checks.add_column("result")
        checks.add_column("detail", overflow="fold")
        for check in self.checks:
            checks.add_row(check.name, Text(check.status, style=style[check.status]), check.detail)
        parts: list[Any] = [checks]
        if self.scores:
            table = Table(title="scores", title_justify="left")
            table.add_column("run")
            table.add_column("split")
            for _, label, _ in self.metrics:
                table.add_column(label, justify="right")
            for run, splits in self.scores.items():
                for split, values in splits.items():
                    table.add_row(
                        run,
                        split,
                        *(
                            f"{values[name]:.{precision}f}" if name in values else "-"
                            for name, _, precision in self.metrics
                        ),
                    )
            parts.append(table)
        verdict = "task is sound" if self.ok else "task has problems: see the failed checks"
        parts.append(Text(verdict, style="bold green" if self.ok else "bold red"))
        return Group(*parts)

    def __str__(self) -> str:
        lines = [f"{c.status:5} {c.name}: {c.detail}" for c in self.checks]
        for run, splits in self.scores.items():
            for split, values in splits.items():
                lines.append(f"{run} [{split}] " + ", ".join(f"{k}={v:.6g}" for k, v in values.items()))
        return "\n".join(lines)


def _csv_header(path: Path) -> list[str]:
    try:
        return [str(c) for c in pd.read_csv(path, nrows=0, encoding="utf-8-sig").columns]
    except (ValueError, UnicodeError):  # empty or not CSV: carries no labels
        return []


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _files_below(folder: Path) -> Iterator[Path]:
    if folder.is_dir():
        yield from sorted(p for p in folder.rglob("*") if p.is_file())


def validate_task(task_dir: str | Path, sandbox: str = "docker", echo: Echo = print) -> TaskValidationReport:
    """Prove a task sound: spec, data, isolation of the hidden reference, evaluator, baseline.

    Checks, in order: the spec loads; the evaluator imports; the prepared data exists (and matches its
    ``manifest.json`` when there is one); each phase's reference has the id column, every target column and the
    split column with exactly the declared splits; each input folder's ``predict_file`` lists the reference's ids
    and holds no target column; no file teams can read (inputs, public) carries labels of a phase's rows to
    predict or a copy of the hidden reference, and the hidden reference lies outside them; the reference scored
    against itself (in the evaluator's own process) reaches each metric's ``best``; the baseline submission runs
    through :func:`harness.pipeline.evaluate_submission` on the validation phase and is scored.

    Args:
        task_dir: the task folder.
        sandbox: sandbox for the baseline run: ``docker`` or ``process``.
        echo: called with a progress line before each step.

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

    echo("checking the prepared data")
    if not _check_data_present(spec, report):
        return report
    references = _check_references(spec, report)
    _check_inputs(spec, report, references)
    _check_hidden_isolated(spec, report, references)

    echo("scoring the reference against itself (in the evaluator's own process)")
    for phase in PHASES:
        if phase in references:
            _check_self_score(spec, phase, references[phase], report)

    echo(f"running the baseline on the validation phase (sandbox: {sandbox})")
    _check_baseline(spec, sandbox, report, echo)
    return report


def _check_data_present(spec: TaskSpec, report: TaskValidationReport) -> bool:
    hint = f"run `harness task prepare {spec.task_dir}` first"
    missing = [
        str(p)
        for p in (
            spec.data_root,
            spec.public_dir,
            *(spec.input_dir(ph) for ph in PHASES),
            *(spec.reference_path(ph) for ph in PHASES),
        )
        if not p.exists()
    ]
    if missing:
        report.add("data prepared", "fail", f"missing: {', '.join(missing)}; {hint}")
        return False
    manifest_path = spec.data_root / "manifest.json"
    if not manifest_path.is_file():
        report.add("data prepared", "pass", f"{spec.data_root} (no manifest.json to verify against)")
        return True
    try:
        files = json.loads(manifest_path.read_text(encoding="utf-8"))["files"]
        changed = [
            name
            for name, info in files.items()
            if not (spec.data_root / name).is_file() or _sha256(spec.data_root / name) != info["sha256"]
        ]
    except (ValueError, KeyError, TypeError) as exc:
        report.add("data prepared", "fail", f"manifest.json is malformed ({exc}); {hint}")
        return False
    if changed:
        report.add(
            "data prepared",
            "fail",
            f"{len(changed)} file(s) differ from manifest.json, first: {changed[0]}; {hint} again",
        )
        return False
    report.add("data prepared", "pass", f"{len(files)} files match manifest.json")
    return True


def _check_references(spec: TaskSpec, report: TaskValidationReport) -> dict[str, pd.DataFrame]:
    from harness.scoring import load_reference

    references: dict[str, pd.DataFrame] = {}
    for phase in PHASES:
        name = f"reference ({phase})"
        try:
            reference = load_reference(spec, phase)
        except EvaluatorError as exc:
            report.add(name, "fail", exc.message)
            continue
        counts = reference[spec.data.split_column].value_counts()
        absent = [s for s in spec.splits(phase) if s not in counts]
        if absent:
            report.add(
                name,
                "fail",
                f"no rows of declared split(s) {absent}; data.splits.{phase} declares {list(spec.splits(phase))}",
            )
            continue
        shares = ", ".join(f"{s} {counts[s]:,} ({counts[s] / len(reference):.0%})" for s in spec.splits(phase))
        report.add(
            name, "pass", f"{len(reference):,} rows; columns {', '.join(map(str, reference.columns))}; splits: {shares}"
        )
        references[phase] = reference
    return references


def _check_inputs(spec: TaskSpec, report: TaskValidationReport, references: dict[str, pd.DataFrame]) -> None:
    id_col, targets = spec.predictions.id_column, set(spec.predictions.reference_targets)
    for phase in PHASES:
        name = f"input folder ({phase})"
        folder = spec.input_dir(phase)
        problems: list[str] = []
        files = [p for p in _files_below(folder)]
        if spec.data.predict_file:
            predict = folder / spec.data.predict_file
            if not predict.is_file():
                problems.append(f"no {spec.data.predict_file} (data.predict_file)")
            else:
                frame = pd.read_csv(predict, dtype=str, keep_default_na=False)
                leaked = sorted(targets & set(frame.columns))
                if leaked:
                    problems.append(f"{spec.data.predict_file} holds target column(s) {leaked}")
                if id_col not in frame.columns:
                    problems.append(f"{spec.data.predict_file} lacks the id column {id_col!r}")
                elif phase in references:
                    ids, ref_ids = set(frame[id_col]), set(references[phase][id_col].astype(str))
                    if ids != ref_ids:
                        problems.append(
                            f"{spec.data.predict_file} has {len(ids):,} ids, the reference "
                            f"{len(ref_ids):,}; {len(ref_ids - ids):,} missing, {len(ids - ref_ids):,} "
                            "extra"
                        )
        if problems:
            report.add(name, "fail", "; ".join(problems))
        else:
            report.add(name, "pass", f"{len(files)} files: {', '.join(p.name for p in files)}")


def _check_hidden_isolated(spec: TaskSpec, report: TaskValidationReport, references: dict[str, pd.DataFrame]) -> None:
    """No file teams can read holds a hidden reference or labels of a phase's rows to predict."""
    id_col, targets = spec.predictions.id_column, set(spec.predictions.reference_targets)
    hidden = spec.reference_path("test").resolve()
    visible = {"public": spec.public_dir, **{f"input ({ph})": spec.input_dir(ph) for ph in PHASES}}
    problems: list[str] = []
    hidden_hash = _sha256(hidden)
    test_ids = set(references["test"][id_col].astype(str)) if "test" in references else set()
    for label, folder in visible.items():
        real = folder.resolve()
        if hidden.is_relative_to(real):
            problems.append(f"the hidden reference {hidden} lies inside {label} ({real})")
        for path in _files_below(folder):
            if path.resolve() == hidden or _sha256(path) == hidden_hash:
                problems.append(f"{path} is a copy of the hidden reference")
                continue
            if path.suffix.lower() != ".csv":
                continue
            header = set(_csv_header(path))
            if id_col in header and header & targets and test_ids:
                ids = set(pd.read_csv(path, usecols=[id_col], dtype=str, keep_default_na=False)[id_col])
                overlap = ids & test_ids
                if overlap:
                    problems.append(
                        f"{path} holds labels of {len(overlap):,} hidden test rows, e.g. {sorted(overlap)[0]}"
                    )
    # The phase's own rows to predict must not be labelled in its own input folder either.
    for phase in PHASES:
        if phase not in references:
            continue
        ids_to_predict = set(references[phase][id_col].astype(str))
        for path in _files_below(spec.input_dir(phase)):
            if path.suffix.lower() != ".csv":
                continue
            header = set(_csv_header(path))
            if id_col in header and header & targets:
                ids = set(pd.read_csv(path, usecols=[id_col], dtype=str, keep_default_na=False)[id_col])
                overlap = ids & ids_to_predict
                if overlap:
                    problems.append(
                        f"{path} labels {len(overlap):,} of the {phase} rows to predict, e.g. {sorted(overlap)[0]}"
                    )
    if problems:
        report.add("hidden reference isolated", "fail", "; ".join(dict.fromkeys(problems)))
    else:
        report.add(
            "hidden reference isolated",
            "pass",
            f"{spec.data.references['test']} is outside every input and the public folder; no readable "
            "file labels the rows to predict",
        )


def _check_self_score(spec: TaskSpec, phase: str, reference: pd.DataFrame, report: TaskValidationReport) -> None:
    from harness.scoring import perfect_predictions, score_outputs

    name = f"reference vs itself ({phase})"
    with tempfile.TemporaryDirectory(prefix="harness-selfscore-") as tmp:
        perfect_predictions(spec, reference).to_csv(Path(tmp) / spec.predictions.file, index=False)
        try:
            scores = score_outputs(spec, Path(tmp), phase)
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


def _check_baseline(spec: TaskSpec, sandbox: str, report: TaskValidationReport, echo: Echo) -> None:
    name = "baseline (validation)"
    if spec.baseline_path is None:
        report.add(name, "warn", "task.yaml names no baseline submission; add `baseline:` to prove the task end to end")
        return
    if not spec.baseline_path.exists():
        report.add(name, "fail", f"the baseline {spec.baseline_path} does not exist (task.yaml: baseline)")
        return
    try:
        from harness.pipeline import evaluate_submission
    except ImportError as exc:
        report.add(name, "skip", f"pipeline not available ({exc}); the baseline was not run")
        return
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="harness-validate-") as tmp:
            record = evaluate_submission(
                spec, spec.baseline_path, phase="validation", sandbox=sandbox, work_dir=Path(tmp)
            )
    except HarnessError as exc:
        report.add(name, "fail", f"{type(exc).__name__}: {exc}")
        return
    took = time.monotonic() - started
    scores = record.scores
    if record.status is not Status.SUCCEEDED:
        report.add(name, "fail", f"status {record.status}: {record.reason}")
        return
    report.scores["baseline (validation)"] = {split: dict(values) for split, values in scores.items()}
    primary = spec.primary_metric.name
    shown = ", ".join(
        f"{split}: {primary} {values.get(primary, float('nan')):.{spec.primary_metric.precision}f}"
        for split, values in scores.items()
    )
    report.add(name, "pass", f"succeeded in {took:.1f} s; {shown}")
    echo(f"baseline scored: {shown}")
