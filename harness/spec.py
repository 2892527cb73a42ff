"""Task specs: the declarative description of a customer task, loaded from ``task_specs/<id>/task.yaml``.

A task author writes ``task.yaml`` once; the harness derives everything else from it (sandbox limits, the image,
the prediction schema, the metric table's columns and ranking). Unknown keys are errors, so a typo never drops a
setting silently. Every error names the file and the field path, e.g.
``task.yaml: metrics[1].goal: expected 'minimize' or 'maximize', got 'lower'``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from harness.errors import SpecError
from harness.sandbox.base import Limits

__all__ = [
    "PHASES",
    "ColumnSpec",
    "DataSpec",
    "EvaluatorSpec",
    "ImageSpec",
    "LeaderboardSpec",
    "LimitsSpec",
    "MetricSpec",
    "PredictionSpec",
    "SubmissionSpec",
    "TaskSpec",
    "load_spec",
]

#: Phases of a task. ``validation``: teams' self-check on data they may see; ``test``: the judges' run,
#: scored against the hidden reference in splits ``public`` and ``private``.
PHASES = ("validation", "test")

SPEC_FILE = "task.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MetricSpec(_Strict):
    """One metric of the task. ``precision`` is the number of decimals shown in metric tables."""

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    goal: Literal["minimize", "maximize"]
    primary: bool = False
    precision: Annotated[int, Field(ge=0, le=12)] = 4
    label: str = ""
    description: str = ""

    @property
    def best_first_ascending(self) -> bool:
        """True when smaller values rank first (goal ``minimize``)."""
        return self.goal == "minimize"


class ColumnSpec(_Strict):
    """One column of the predictions file. dtype: ``string``, ``int``, ``float`` or ``bool``."""

    name: Annotated[str, Field(min_length=1)]
    dtype: Literal["string", "int", "float", "bool"]


class PredictionSpec(_Strict):
    """The prediction table a submission writes into its output folder.

    Attributes:
        file: file name inside the output folder (CSV).
        id_column: column that identifies each row; must also be in ``columns``.
        columns: every required column with its dtype; extra columns are ignored.
        max_mb: files larger than this are refused before parsing (MiB).
    """

    file: str = "predictions.csv"
    id_column: str
    columns: tuple[ColumnSpec, ...]
    max_mb: Annotated[int, Field(gt=0)] = 256

    @model_validator(mode="after")
    def _id_in_columns(self) -> PredictionSpec:
        names = [c.name for c in self.columns]
        if self.id_column not in names:
            raise ValueError(f"id_column {self.id_column!r} is not among columns {names}")
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate column names in {names}")
        return self


class DataSpec(_Strict):
    """Where a task's data lives, relative to the task folder; ``prepare`` builds it.

    Attributes:
        prepare: script (relative to the task folder) that builds everything below, run as
            ``python prepare.py OUT_DIR``; deterministic.
        root: folder (relative to the task folder) that ``prepare`` fills; not committed.
        public: sub-folder of ``root`` given to teams (starter kit): labelled train and validation data.
        inputs: per phase, the sub-folder of ``root`` mounted read-only into the sandbox as ``input_dir``.
        references: per phase, the reference file (relative to ``root``) the evaluator reads. The ``test``
            reference is hidden: it never enters a sandbox.
        split_column: column of the reference naming each row's split (``public``/``private``; ``validation``).
    """

    prepare: str = "prepare.py"
    root: str = "data"
    public: str = "public"
    inputs: dict[Literal["validation", "test"], str]
    references: dict[Literal["validation", "test"], str]
    split_column: str = "split"

    @model_validator(mode="after")
    def _both_phases(self) -> DataSpec:
        for name in ("inputs", "references"):
            missing = [p for p in PHASES if p not in getattr(self, name)]
            if missing:
                raise ValueError(f"{name} lacks phase(s) {missing}; give one entry for each of {list(PHASES)}")
        return self


class EvaluatorSpec(_Strict):
    """The task's evaluator.

    Attributes:
        path: Python file relative to the task folder (usually ``../../evaluators/<task>.py``).
        class_name: the :class:`harness.scoring.Evaluator` subclass in that file.
        mode: ``predictions`` (the author's method gets a validated prediction table) or ``output_dir``
            (it gets the output folder, for tasks whose output is not a table).
        time_s: wall-clock limit of one scoring, in seconds; past it the run is ``evaluator_error``.
        memory_mb: address-space limit of the evaluator process, in MiB.
    """

    path: str
    class_name: str
    mode: Literal["predictions", "output_dir"] = "predictions"
    time_s: Annotated[float, Field(gt=0)] = 120.0
    memory_mb: Annotated[int, Field(gt=0)] = 4096


class LimitsSpec(_Strict):
    """Sandbox limits for one run of a submission (see :class:`harness.sandbox.base.Limits` for units)."""

    time_s: Annotated[float, Field(gt=0)] = 600.0
    memory_mb: Annotated[int, Field(gt=0)] = 2048
    cpus: Annotated[float, Field(gt=0)] = 1.0
    pids: Annotated[int, Field(gt=0)] = 256
    output_mb: Annotated[int, Field(gt=0)] = 64
    log_kb: Annotated[int, Field(gt=0)] = 256

    def to_limits(self) -> Limits:
        """The same values as the sandbox's frozen :class:`Limits`."""
        return Limits(**self.model_dump())


class ImageSpec(_Strict):
    """The task image: a base plus the Python packages teams may use (pip requirement strings).

    ``base``: ``"offline"`` (a Debian bookworm rootfs made with debootstrap and ``docker import``; no registry
    needed) or an image reference such as ``"python:3.11-slim"`` that must already be present locally.
    ipykernel and papermill are always added so notebooks run inside the image.
    """

    base: str = "offline"
    packages: tuple[str, ...] = ()


class SubmissionSpec(_Strict):
    """What a submission may be and how it is started.

    Attributes:
        kinds: accepted kinds, ``notebook`` and/or ``script``.
        notebook: entry notebook file name when a submission holds several notebooks.
        command: argv for script submissions, run in the submission folder.
        kernel: kernel name notebooks are executed with (the image provides ``python3``).
    """

    kinds: tuple[Literal["notebook", "script"], ...] = ("notebook", "script")
    notebook: str = "solution.ipynb"
    command: tuple[str, ...] = ("python", "main.py")
    kernel: str = "python3"


class LeaderboardSpec(_Strict):
    """Leaderboard rules. ``selection``: which run per team counts (``best`` by the primary metric on the
    public split, or ``latest``). ``daily_limit``: submissions per team per day (0 = unlimited)."""

    selection: Literal["best", "latest"] = "best"
    splits: tuple[Literal["public", "private"], ...] = ("public", "private")
    daily_limit: Annotated[int, Field(ge=0)] = 0


class TaskSpec(_Strict):
    """A validated task spec. Build it with :func:`load_spec`; paths resolve against :attr:`task_dir`."""

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$")]
    title: str
    customer: str
    description: str
    submission: SubmissionSpec = SubmissionSpec()
    parameters: dict[str, str | int | float | bool] = {}
    predictions: PredictionSpec
    data: DataSpec
    evaluator: EvaluatorSpec
    metrics: tuple[MetricSpec, ...]
    limits: LimitsSpec = LimitsSpec()
    image: ImageSpec = ImageSpec()
    baseline: str | None = None
    leaderboard: LeaderboardSpec = LeaderboardSpec()

    _task_dir: Path = PrivateAttr(default=Path("."))
    _spec_hash: str = PrivateAttr(default="")

    @model_validator(mode="after")
    def _one_primary(self) -> TaskSpec:
        if not self.metrics:
            raise ValueError("metrics: at least one metric is required")
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names):
            raise ValueError(f"metrics: duplicate metric names in {names}")
        primaries = [m.name for m in self.metrics if m.primary]
        if len(primaries) != 1:
            raise ValueError(f"metrics: exactly one metric must have primary: true, found {len(primaries)}"
                             + (f" ({', '.join(primaries)})" if primaries else ""))
        reserved = {"notebook", "input_dir", "output_dir"} & set(self.parameters)
        if reserved:
            raise ValueError(f"parameters: {sorted(reserved)} are set by the harness and cannot be declared")
        return self

    # -- derived -------------------------------------------------------------------------------------------
    @property
    def task_dir(self) -> Path:
        """Absolute task folder (the one holding task.yaml)."""
        return self._task_dir

    @property
    def spec_hash(self) -> str:
        """sha256 of task.yaml's bytes and the evaluator file's bytes (provenance of every run)."""
        return self._spec_hash

    @property
    def primary_metric(self) -> MetricSpec:
        """The one metric with ``primary: true``."""
        return next(m for m in self.metrics if m.primary)

    @property
    def metric_names(self) -> tuple[str, ...]:
        """Metric names in the spec's order (the tie-break order of the leaderboard)."""
        return tuple(m.name for m in self.metrics)

    @property
    def data_root(self) -> Path:
        """Absolute folder that ``prepare`` fills."""
        return (self.task_dir / self.data.root).resolve()

    @property
    def public_dir(self) -> Path:
        """Absolute folder of the data teams may see."""
        return self.data_root / self.data.public

    @property
    def evaluator_path(self) -> Path:
        """Absolute path of the evaluator's Python file."""
        return (self.task_dir / self.evaluator.path).resolve()

    @property
    def baseline_path(self) -> Path | None:
        """Absolute path of the baseline submission, if the spec names one."""
        return (self.task_dir / self.baseline).resolve() if self.baseline else None

    @property
    def image_tag(self) -> str:
        """Local image name of this task, e.g. ``harness-task/nyc-flight-delays:latest``."""
        return f"harness-task/{self.id}:latest"

    def input_dir(self, phase: str) -> Path:
        """Absolute input folder of a phase (mounted read-only at ``/input``). Raises KeyError on a bad phase."""
        return self.data_root / self.data.inputs[phase]  # type: ignore[index]

    def reference_path(self, phase: str) -> Path:
        """Absolute reference file of a phase (never mounted into a sandbox). Raises KeyError on a bad phase."""
        return self.data_root / self.data.references[phase]  # type: ignore[index]

    def sandbox_limits(self) -> Limits:
        """The spec's limits as a sandbox :class:`Limits`."""
        return self.limits.to_limits()


def _field_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _describe(error: dict[str, Any]) -> str:
    kind = error.get("type", "")
    found = error.get("input")
    if kind == "extra_forbidden":
        return "unknown key (check its spelling; allowed keys are listed in the TaskSpec docs)"
    if kind == "missing":
        return "required key is missing"
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        return f"expected {expected}, got {found!r}"
    msg = str(error.get("msg", "invalid value"))
    msg = msg.removeprefix("Value error, ")
    if kind in {"value_error", "assertion_error"}:
        return msg
    return f"{msg}, got {found!r}"


def load_spec(task_dir: str | Path) -> TaskSpec:
    """Load and validate ``TASK_DIR/task.yaml``.

    Args:
        task_dir: the task folder (or the task.yaml file itself).

    Returns:
        The validated, frozen :class:`TaskSpec`, with ``task_dir`` and ``spec_hash`` set.

    Raises:
        SpecError: the folder or file is missing, the YAML does not parse, or a field is wrong. The message names
            the file and the field path, what was expected and what was found. Only the first problem is
            raised; fix it and load again.
    """
    path = Path(task_dir)
    if path.is_file():
        path = path.parent
    path = path.resolve()
    spec_file = path / SPEC_FILE
    if not spec_file.is_file():
        raise SpecError(f"no {SPEC_FILE} in {path}; a task folder holds task.yaml (see task_specs/)", str(spec_file))
    raw_bytes = spec_file.read_bytes()
    try:
        raw = yaml.safe_load(raw_bytes)
    except yaml.YAMLError as exc:
        raise SpecError(f"not valid YAML: {exc}", SPEC_FILE) from None
    if not isinstance(raw, dict):
        raise SpecError(f"expected a mapping of keys at the top level, got {type(raw).__name__}", SPEC_FILE)
    try:
        spec = TaskSpec.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise SpecError(_describe(dict(first)), SPEC_FILE, _field_path(tuple(first["loc"]))) from None
    spec._task_dir = path
    evaluator_file = spec.evaluator_path
    if not evaluator_file.is_file():
        raise SpecError(f"evaluator file {spec.evaluator.path!r} does not exist (resolved to {evaluator_file})",
                        SPEC_FILE, "evaluator.path")
    digest = hashlib.sha256(raw_bytes)
    digest.update(evaluator_file.read_bytes())
    spec._spec_hash = digest.hexdigest()
    return spec
