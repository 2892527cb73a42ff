"""Teams' self-check: the judges' exact code path, on the validation split.

:func:`check` opens the submission with the judges' rules, runs it in the same sandbox with the same limits on the
task's *validation* input, validates its outputs and scores them with the same evaluator against the validation
labels (:func:`harness.pipeline.evaluate_opened`, as ``harness run`` does with the test phase). The result renders
in a terminal (rich) and in a notebook (HTML), so a team can call it from a cell in JupyterLab; team text in it
(an exception's message, a column name) is shown with control characters made visible (:func:`harness.text.visible`)::

    import harness
    harness.check("task", "solution.ipynb")

With ``sandbox="process"`` (no Docker) the notebook runs in a cached virtual environment holding the task's package
set (:func:`harness.venvs.ensure_task_venv`): an import the judges' image lacks fails here too. What a local process
cannot check is said in :attr:`CheckResult.caveats`, printed before the verdict, and the verdict is then qualified:
the process sandbox never prints the unqualified ``PASS: this submission would be scored``. Network use is always
such a caveat; when no environment can be made, imports outside the task's packages are one too.
"""

from __future__ import annotations

import html
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness.errors import HarnessError, SubmissionError
from harness.pipeline import RunRecord, evaluate_opened
from harness.sandbox import Sandbox
from harness.spec import TaskSpec, load_spec
from harness.status import Status
from harness.submission import open_submission
from harness.text import visible

__all__ = ["CAVEAT_IMPORTS", "CAVEAT_NETWORK", "WARN_FRACTION", "CheckResult", "check"]

#: Caveat of every process-sandbox check: it cannot block the network.
CAVEAT_NETWORK = (
    "network use: the process sandbox does not block the network, the judges' sandbox has none (a download or an "
    "online read that worked here fails there; the data is in input_dir)"
)
#: Caveat of a process-sandbox check without the task's environment.
CAVEAT_IMPORTS = (
    "imports outside the task's packages: no environment with the task's package set could be made ({why}), so "
    "the notebook ran with this machine's Python and packages; a package the judges' sandbox lacks, or another "
    "version of one, is not detected"
)

#: Resource use above this fraction of a limit gives a warning (0.8 = 80 %).
WARN_FRACTION = 0.8

_HINTS: dict[Status, str] = {
    Status.TIMED_OUT: "make it faster (sample the training data, fewer iterations) or check for an endless loop",
    Status.OUT_OF_MEMORY: "use less memory: read only the columns you need, use smaller dtypes, or sample",
    Status.FAILED: "read the log and the executed notebook named below; fix the error and check again",
    Status.INVALID_OUTPUT: "fix predictions.csv as described above; the format is in the task README",
    Status.REJECTED: "fix the submission as described above and check again",
    Status.EVALUATOR_ERROR: "the task's evaluator failed: tell the organisers (this is not your code's fault)",
    Status.HARNESS_ERROR: "the harness itself failed: tell the organisers and attach the log",
}

#: Statuses whose resource use is at a limit by definition (no "near the limit" warning for them).
_KILLED_AT_LIMIT = (Status.TIMED_OUT, Status.OUT_OF_MEMORY)


@dataclass
class CheckResult:
    """The outcome of a self-check.

    Attributes:
        task_id: the task.
        submission: the submission as given.
        status: the run status a judge's run would get (``succeeded`` means it would be scored).
        reason: one line on what went wrong (``""`` on success).
        problems: every problem found, one sentence each, with what to fix.
        metrics: DataFrame indexed by metric name with columns ``value`` (float64), ``goal`` (str),
            ``primary`` (bool); empty unless scored.
        resources: DataFrame indexed by resource (``time_s``, ``memory_mb``) with columns ``used``, ``limit``
            (float64) and ``share`` (used / limit, float64; NaN when unknown).
        warnings: resource warnings (above :data:`WARN_FRACTION` of a limit) and notes from opening.
        caveats: differences from the judges' sandbox this check could not rule out (process sandbox), one
            sentence each; printed before the verdict, and a success is then not an unqualified PASS.
        artifacts_dir: folder with log.txt, executed.ipynb (notebooks) and output/.
        record: the full run record.
    """

    task_id: str
    submission: str
    status: Status
    reason: str = ""
    problems: list[str] = field(default_factory=list)
    metrics: pd.DataFrame = field(default_factory=pd.DataFrame)
    resources: pd.DataFrame = field(default_factory=pd.DataFrame)
    warnings: list[str] = field(default_factory=list)
    artifacts_dir: str = ""
    record: RunRecord | None = None
    caveats: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the judges' run would score this submission."""
        return self.status == Status.SUCCEEDED

    @property
    def verdict(self) -> str:
        """One line: would it be scored, and if not, why."""
        if self.ok:
            primary = self.metrics[self.metrics["primary"]]
            score = ""
            if not primary.empty:
                score = f"; validation {primary.index[0]} = {primary['value'].iloc[0]:.4g}"
            if self.caveats:
                return (
                    f"PASS here, with {len(self.caveats)} difference(s) from the judges' sandbox unchecked (see above)"
                    f"{score}: check with --sandbox docker before you rely on it"
                )
            return f"PASS: this submission would be scored{score}"
        return f"FAIL ({self.status}): {visible(self.reason)}"

    def _caveat_lines(self) -> list[str]:
        if not self.caveats:
            return []
        return ["not checked here (process sandbox):"] + [f"  - {c}" for c in self.caveats]

    @property
    def hint(self) -> str:
        """What to do next when the check failed."""
        return "" if self.ok else _HINTS.get(self.status, "")

    def _resource_lines(self) -> list[str]:
        lines = []
        for name, row in self.resources.iterrows():
            unit = "s" if name == "time_s" else "MB"
            used = "unknown" if pd.isna(row["used"]) else f"{row['used']:.1f} {unit}"
            share = "" if pd.isna(row["share"]) else f" ({row['share']:.0%} of the limit)"
            lines.append(f"{str(name).split('_')[0]}: {used} of {row['limit']:g} {unit}{share}")
        return lines

    def __str__(self) -> str:
        lines = [*self._caveat_lines(), self.verdict]
        if not self.metrics.empty:
            lines.append("metrics (validation split):")
            lines += [f"  {name}: {row['value']:.6g} ({row['goal']})" for name, row in self.metrics.iterrows()]
        if self.problems:
            lines.append("problems:")
            lines += [f"  - {visible(p)}" for p in self.problems]
        if self.hint:
            lines.append(f"hint: {self.hint}")
        lines.append("resources:")
        lines += [f"  {line}" for line in self._resource_lines()]
        lines += [f"warning: {visible(w)}" for w in self.warnings]
        if self.artifacts_dir:
            lines.append(f"artifacts: {visible(self.artifacts_dir)}")
        return "\n".join(lines)

    def __rich__(self) -> Any:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        parts: list[Any] = [Text(line, style="yellow") for line in self._caveat_lines()]
        parts.append(Text(self.verdict, style="bold green" if self.ok and not self.caveats else "bold red"))
        if not self.metrics.empty:
            table = Table(title="metrics (validation split)", title_justify="left")
            for column in ("metric", "value", "goal"):
                table.add_column(column)
            for name, row in self.metrics.iterrows():
                table.add_row(str(name) + (" (primary)" if row["primary"] else ""), f"{row['value']:.6g}", row["goal"])
            parts.append(table)
        if self.problems:
            parts.append(Text("problems:", style="bold"))
            parts += [Text(f"  - {visible(p)}") for p in self.problems]
        if self.hint:
            parts.append(Text(f"hint: {self.hint}", style="yellow"))
        parts.append(Text("resources: " + "; ".join(self._resource_lines())))
        parts += [Text(f"warning: {visible(w)}", style="yellow") for w in self.warnings]
        if self.artifacts_dir:
            parts.append(Text(f"artifacts: {visible(self.artifacts_dir)}", style="dim"))
        return Group(*parts)

    def _repr_html_(self) -> str:
        colour = "#1a7f37" if self.ok else "#cf222e"
        out = ["<div>"]
        if self.caveats:
            out.append(
                "<p><b>not checked here (process sandbox)</b></p><ul>"
                + "".join(f"<li>{html.escape(c)}</li>" for c in self.caveats)
                + "</ul>"
            )
        out.append(f'<p style="color:{colour};font-weight:bold">{html.escape(self.verdict)}</p>')
        if not self.metrics.empty:
            out.append("<p><b>metrics (validation split)</b></p>" + self.metrics.to_html())
        if self.problems:
            out.append(
                "<p><b>problems</b></p><ul>"
                + "".join(f"<li>{html.escape(visible(p))}</li>" for p in self.problems)
                + "</ul>"
            )
        if self.hint:
            out.append(f"<p><i>hint: {html.escape(self.hint)}</i></p>")
        out.append(
            "<p><b>resources</b></p><ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in self._resource_lines())
        )
        out.append("</ul>")
        out += [f'<p style="color:#9a6700">warning: {html.escape(visible(w))}</p>' for w in self.warnings]
        if self.artifacts_dir:
            out.append(f"<p><small>artifacts: {html.escape(visible(self.artifacts_dir))}</small></p>")
        return "".join(out) + "</div>"


def _metrics_frame(spec: TaskSpec, record: RunRecord) -> pd.DataFrame:
    scores = record.scores.get("validation") or next(iter(record.scores.values()), {})
    if not scores:
        return pd.DataFrame(columns=["value", "goal", "primary"])
    rows = {m.name: {"value": float(scores[m.name]), "goal": m.goal, "primary": m.primary} for m in spec.metrics}
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "metric"
    return frame.astype({"value": "float64", "primary": "bool"})


def _resources(spec: TaskSpec, record: RunRecord) -> tuple[pd.DataFrame, list[str]]:
    used = {"time_s": record.duration_s, "memory_mb": record.peak_memory_mb}
    limits = {"time_s": spec.limits.time_s, "memory_mb": float(spec.limits.memory_mb)}
    rows, warnings = {}, []
    for name in ("time_s", "memory_mb"):
        value = used[name]
        share = (value / limits[name]) if value is not None else float("nan")
        rows[name] = {"used": float("nan") if value is None else float(value), "limit": limits[name], "share": share}
        if (
            value is not None
            and share > WARN_FRACTION
            and record.status not in (Status.TIMED_OUT, Status.OUT_OF_MEMORY)
        ):
            what = "run time" if name == "time_s" else "peak memory"
            warnings.append(
                f"{what} is {share:.0%} of the limit ({value:.1f} of {limits[name]:g}); the hidden test data may "
                "differ in size, so leave a margin"
            )
    return pd.DataFrame.from_dict(rows, orient="index").astype("float64"), warnings


def check(
    task_dir: str | Path,
    submission: str | Path,
    *,
    sandbox: str = "docker",
    artifacts_dir: str | Path | None = None,
) -> CheckResult:
    """Self-check a submission exactly as the judges' run would treat it, on the validation split.

    Args:
        task_dir: the task folder (holding task.yaml), e.g. the ``task/`` folder of a starter kit.
        submission: a folder, .zip, .tar.gz or .ipynb.
        sandbox: ``docker`` (default; the judges' sandbox) or ``process`` (a local subprocess with time and memory
            limits in a cached environment of the task's packages, for laptops without Docker; it does not isolate,
            and says what it could not check in :attr:`CheckResult.caveats`).
        artifacts_dir: where to keep the log, the executed notebook and the outputs (default: a fresh folder under
            ``./.harness/check/``; it is replaced on each check of the same content). A folder given here must be
            new, empty, or one an earlier check made (it is replaced): a folder of the team's own is never deleted.

    Returns:
        A :class:`CheckResult`; ``result.ok`` tells whether the judges' run would score the submission.

    Raises:
        SpecError: the task folder is not a valid task.
        EngineUnavailableError: ``sandbox="docker"`` and no Docker engine answers (the message says how to get one
            or to use ``sandbox="process"``).
        ImageError: the task image is missing (``harness image build TASK_DIR`` makes it).
        HarnessError: ``artifacts_dir`` is a file, or a non-empty folder that no earlier check made.
    """
    spec = load_spec(task_dir)
    work = Path(tempfile.mkdtemp(prefix="harness-check-"))
    try:
        try:
            opened = open_submission(Path(submission), work / "submission", spec.submission)
        except SubmissionError as exc:
            return CheckResult(
                task_id=spec.id,
                submission=str(submission),
                status=Status.REJECTED,
                reason=str(exc),
                problems=[str(exc)],
                resources=_resources(spec, _empty_record(spec))[0],
            )
        target = Path(artifacts_dir) if artifacts_dir else Path(".harness") / "check" / opened.content_hash[:12]
        target = _fresh_artifacts_dir(target.resolve())
        runner, caveats = _sandbox_for(spec, sandbox)
        try:
            record = evaluate_opened(spec, opened, phase="validation", artifacts_dir=target, sandbox=runner)
        finally:
            if not isinstance(runner, str):
                runner.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    resources, warnings = _resources(spec, record)
    problems = list(record.problems) or ([record.reason] if record.reason else [])
    return CheckResult(
        task_id=spec.id,
        submission=str(submission),
        status=record.status,
        reason=record.reason,
        problems=problems,
        metrics=_metrics_frame(spec, record),
        resources=resources,
        warnings=warnings + [f"note: {n}" for n in record.notes],
        artifacts_dir=record.artifacts_dir,
        record=record,
        caveats=caveats,
    )


def _sandbox_for(spec: TaskSpec, sandbox: str) -> tuple[str | Sandbox, list[str]]:
    """The sandbox a check runs in, and the differences from the judges' it leaves unchecked."""
    if sandbox != "process":
        return sandbox, []
    from harness.errors import ImageError
    from harness.sandbox.process import ProcessSandbox
    from harness.venvs import ensure_task_venv

    try:
        python = ensure_task_venv(spec, echo=_progress)
    except (ImageError, OSError) as exc:
        why = str(exc).splitlines()[0][:300]
        return ProcessSandbox(), [CAVEAT_IMPORTS.format(why=why), CAVEAT_NETWORK]
    return ProcessSandbox(python=python), [CAVEAT_NETWORK]


def _progress(message: str) -> None:
    import sys

    print(message, file=sys.stderr)


#: Marks a folder a self-check made, so that the next check of the same content may replace it.
ARTIFACTS_MARKER = ".harness-check"


def _fresh_artifacts_dir(target: Path) -> Path:
    """Empty ``target`` for a check's artifacts, refusing to delete anything the harness did not make."""
    if target.exists() and not target.is_dir():
        raise HarnessError(f"--artifacts {target} is a file; give a new or empty folder")
    if target.is_dir() and any(target.iterdir()):
        if not (target / ARTIFACTS_MARKER).is_file():
            raise HarnessError(
                f"--artifacts {target} is a folder with files that no self-check made; give a new or empty folder "
                "(the check replaces its artifacts folder, and would delete what is in it)"
            )
        shutil.rmtree(target)
    target.mkdir(parents=True, exist_ok=True)
    (target / ARTIFACTS_MARKER).write_text("made by `harness check`; replaced by the next check\n", encoding="utf-8")
    return target


def _empty_record(spec: TaskSpec) -> RunRecord:
    return RunRecord(
        task_id=spec.id, phase="validation", team="", content_hash="", kind="unknown", status=Status.REJECTED
    )
