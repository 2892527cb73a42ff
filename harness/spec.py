"""Task specs: the declarative description of a customer task, loaded from ``task_specs/<id>/task.yaml``.

A task author writes ``task.yaml`` once; the harness derives everything else from it (sandbox limits, the image,
the prediction schema, the metric table's columns and ranking). Unknown keys are errors, so a typo never drops a
setting silently; so are duplicate keys. Every error names the file and the field path, what was expected and what
was found, e.g. ``task.yaml: metrics[1].goal: expected 'minimize' or 'maximize', got 'lower'``.

A minimal spec::

    id: nyc-flight-delays
    title: NYC flight delays
    customer: the city's transport department
    description: Predict the arrival delay of each flight.
    predictions:
      id_column: id
      columns: [{name: id, dtype: string}, {name: arr_delay, dtype: float}]
    data:
      inputs: {validation: validation_input, test: test_input}
      references: {validation: validation_reference.csv, test: hidden/test_reference.csv}
    evaluator: {path: ../../evaluators/nyc_flight_delays.py, class_name: NYCFlightDelaysEvaluator}
    metrics:
      - {name: mae, goal: minimize, primary: true, best: 0}
"""

from __future__ import annotations

import ast
import difflib
import hashlib
import logging
import os
import types
import typing
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from harness.errors import SpecError
from harness.sandbox.base import Limits
from harness.spec_predictions import (
    _NAME_PATTERN,
    ColumnSpec,
    PredictionSpec,
    ProbabilityGroup,
    QuantileGroup,
    _Strict,
)
from harness.spec_ranking import IntervalSpec, PublicRule
from harness.spec_similarity import SimilaritySpec

__all__ = [
    "DEFAULT_SPLITS",
    "PHASES",
    "SPEC_FILE",
    "ColumnSpec",
    "DataSpec",
    "EvaluatorSpec",
    "ImageSpec",
    "LeaderboardSpec",
    "LimitsSpec",
    "MetricSpec",
    "PredictionSpec",
    "ProbabilityGroup",
    "QuantileGroup",
    "ReportSpec",
    "SimilaritySpec",
    "SubmissionSpec",
    "TaskSpec",
    "load_spec",
]

logger = logging.getLogger(__name__)

#: Phases of a task. ``validation``: teams' self-check on data they may see; ``test``: the judges' run,
#: scored against the hidden reference in splits ``public`` and ``private``.
PHASES = ("validation", "test")

#: Splits of each phase's reference when ``data.splits`` is not given.
DEFAULT_SPLITS: dict[str, tuple[str, ...]] = {"validation": ("validation",), "test": ("public", "private")}

SPEC_FILE = "task.yaml"

Phase = Literal["validation", "test"]


def _relative_path(value: str) -> str:
    """Accept only relative POSIX paths that stay inside their base folder."""
    path = PurePosixPath(value)
    if not value or path.is_absolute() or ".." in path.parts:
        raise ValueError(
            f"expected a relative path inside the task's data folder (no '/' at the start, no '..'), got {value!r}"
        )
    return value


class MetricSpec(_Strict):
    """One metric of the task.

    Attributes:
        name: identifier returned by the evaluator (``mae``); lower-case letters, digits, ``_``.
        goal: ``minimize`` or ``maximize``.
        primary: exactly one metric is primary; it ranks the leaderboard.
        precision: decimals shown in metric tables.
        best: the value a perfect prediction reaches (MAE 0, accuracy 1). ``harness task validate`` checks that
            the reference scored against itself reaches it; ``None`` skips that check (with a warning).
        label: display name (``MAE (min)``); defaults to the name.
        description: one sentence for the README and reports.
    """

    name: Annotated[str, Field(pattern=_NAME_PATTERN)]
    goal: Literal["minimize", "maximize"]
    primary: bool = False
    precision: Annotated[int, Field(ge=0, le=12)] = 4
    best: float | None = None
    label: str = ""
    description: str = ""

    @property
    def best_first_ascending(self) -> bool:
        """True when smaller values rank first (goal ``minimize``)."""
        return self.goal == "minimize"

    @property
    def display_name(self) -> str:
        """``label`` if set, else ``name``."""
        return self.label or self.name


class DataSpec(_Strict):
    """Where a task's data lives, relative to the task folder; ``prepare`` builds it.

    Attributes:
        prepare: script (relative to the task folder) that builds everything below, run as
            ``python prepare.py OUT_DIR``; deterministic.
        prepare_packages: pip requirements the prepare script needs beyond Python's standard library
            (``[vega_datasets==0.9.0, pandas==3.1.1]``), installed by the harness into an isolated, cached
            environment (never the harness's own) that runs the script.
        root: folder (relative to the task folder) that ``prepare`` fills; not committed.
        public: sub-folder of ``root`` given to teams (starter kit): labelled train and validation data.
        inputs: per phase, the sub-folder of ``root`` mounted read-only into the sandbox as ``input_dir``.
        references: per phase, the reference file (relative to ``root``) the evaluator reads: a CSV with the
            id column, every column of :attr:`PredictionSpec.reference_targets` and
            ``split_column``. The ``test`` reference is hidden: it never
            enters a sandbox, so it must not lie inside an input folder or the public folder.
        split_column: column of the reference naming each row's split.
        splits: per phase, the splits the reference holds (default ``validation: [validation]``,
            ``test: [public, private]``). Each split is scored separately.
        predict_file: file in each input folder listing the rows to predict (the id column and features, never a
            target column), or ``None``. ``harness task validate`` checks its ids equal the reference's.
    """

    prepare: str = "prepare.py"
    prepare_packages: tuple[Annotated[str, Field(min_length=1)], ...] = ()
    root: str = "data"
    public: str = "public"
    inputs: dict[Phase, str]
    references: dict[Phase, str]
    split_column: str = "split"
    splits: dict[Phase, tuple[Annotated[str, Field(pattern=_NAME_PATTERN)], ...]] = Field(
        default_factory=lambda: dict(DEFAULT_SPLITS)  # type: ignore[arg-type]
    )
    predict_file: str | None = None

    @field_validator("public")
    @classmethod
    def _public_relative(cls, value: str) -> str:
        return _relative_path(value)

    @field_validator("root")
    @classmethod
    def _root_is_a_subfolder(cls, value: str) -> str:
        # `harness task prepare` replaces this folder as a whole: it must be a folder of its own inside the task
        # folder, never the task folder itself or anything above it.
        path = PurePosixPath(value)
        if not value or path.is_absolute() or ".." in path.parts or not path.parts or path.parts[0] in (".", ""):
            raise ValueError(
                "expected a folder of its own inside the task folder, such as 'data' (it is replaced as a whole by "
                f"`harness task prepare`, so not '.', not absolute, no '..'), got {value!r}"
            )
        return value

    @field_validator("inputs", "references")
    @classmethod
    def _paths_relative(cls, value: dict[str, str]) -> dict[str, str]:
        for path in value.values():
            _relative_path(path)
        return value

    @model_validator(mode="after")
    def _both_phases(self) -> DataSpec:
        for name in ("inputs", "references", "splits"):
            missing = [p for p in PHASES if p not in getattr(self, name)]
            if missing:
                raise ValueError(f"{name} lacks phase(s) {missing}; give one entry for each of {list(PHASES)}")
        for phase, names in self.splits.items():
            if not names or len(set(names)) != len(names):
                raise ValueError(f"splits.{phase}: expected one or more distinct split names, got {list(names)}")
        hidden = PurePosixPath(self.references["test"])
        visible = {f"inputs.{p}": PurePosixPath(d) for p, d in self.inputs.items()} | {
            "public": PurePosixPath(self.public)
        }
        for key, folder in visible.items():
            if hidden.is_relative_to(folder):
                raise ValueError(
                    f"references.test ({hidden}) lies inside {key} ({folder}), which teams can read; "
                    "keep the hidden reference outside every input and public folder (e.g. hidden/...)"
                )
        return self


class EvaluatorSpec(_Strict):
    """The task's evaluator.

    Attributes:
        path: Python file relative to the task folder (usually ``../../evaluators/<task>.py``).
        class_name: the :class:`harness.scoring.Evaluator` subclass in that file.
        mode: ``predictions`` (the author's ``score`` gets a validated prediction table) or ``output_dir``
            (``score_output_dir`` gets the output folder, for tasks whose output is not a table).
        time_s: wall-clock limit of one scoring (all splits), in seconds; past it the run is ``evaluator_error``.
        memory_mb: address-space limit of the evaluator process, in MiB.
    """

    path: str
    class_name: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
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

    ``stack``: the package set under the task's own: ``"data-science"`` (default: the pinned stack student notebooks
    import, matplotlib with the inline backend, seaborn, scipy, statsmodels, scikit-learn, pandas, numpy, pyarrow;
    see :data:`harness.stack.DATA_SCIENCE_STACK`) or ``"none"`` (only ``packages``). A package named in
    ``packages`` replaces the stack's pin of the same project.
    """

    base: str = "offline"
    stack: Literal["data-science", "none"] = "data-science"
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


class ReportSpec(_Strict):
    """What the judges' review page breaks errors down by.

    Attributes:
        group_by: columns of the phase's predict file (``data.predict_file``) or of the reference to group
            errors by (``[carrier, origin, month]``); empty: chosen from the predict file's low-cardinality columns.
        horizon: forecasts: the column (predict file or reference) giving each row's steps ahead, for the error
            by horizon; ``None``: rows in id order of each forecast origin are not grouped by horizon.
    """

    group_by: tuple[Annotated[str, Field(min_length=1)], ...] = ()
    horizon: Annotated[str, Field(min_length=1)] | None = None


class LeaderboardSpec(_Strict):
    """Leaderboard rules. ``selection``: which run per team counts (``best`` by the primary metric on the
    public split, or ``latest``). ``splits``: the test splits shown. ``daily_limit``: submissions per team per
    day (0 = unlimited)."""

    selection: Literal["best", "latest"] = "best"
    splits: tuple[str, ...] = ("public", "private")
    daily_limit: Annotated[int, Field(ge=0)] = 0
    intervals: IntervalSpec = IntervalSpec()  # paired bootstrap intervals (harness.spec_ranking)
    public_rule: PublicRule = "best"  # or "ladder" (harness.spec_ranking)


class TaskSpec(_Strict):
    """A validated task spec. Build it with :func:`load_spec`; paths resolve against :attr:`task_dir`."""

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=64)]  # names folders, an image tag
    title: str
    customer: str
    description: str
    submission: SubmissionSpec = SubmissionSpec()
    parameters: dict[str, str | int | float | bool] = Field(default_factory=dict)
    predictions: PredictionSpec
    data: DataSpec
    evaluator: EvaluatorSpec
    metrics: tuple[MetricSpec, ...]
    limits: LimitsSpec = LimitsSpec()
    image: ImageSpec = ImageSpec()
    baseline: str | None = None
    leaderboard: LeaderboardSpec = LeaderboardSpec()
    report: ReportSpec = ReportSpec()
    similarity: SimilaritySpec = SimilaritySpec()

    _task_dir: Path = PrivateAttr(default=Path("."))
    _spec_hash: str = PrivateAttr(default="")

    @field_validator("metrics")
    @classmethod
    def _one_primary(cls, metrics: tuple[MetricSpec, ...]) -> tuple[MetricSpec, ...]:
        if not metrics:
            raise ValueError("at least one metric is required")
        names = [m.name for m in metrics]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"each metric name must be unique; repeated: {', '.join(duplicates)}")
        primaries = [f"metrics[{i}] ({m.name})" for i, m in enumerate(metrics) if m.primary]
        if len(primaries) != 1:
            found = f"found {len(primaries)}" + (f": {', '.join(primaries)}" if primaries else "")
            raise ValueError(
                f"exactly one metric must have 'primary: true', {found}; keep it on the metric "
                "that ranks the leaderboard"
            )
        return metrics

    @field_validator("parameters")
    @classmethod
    def _no_reserved_parameters(cls, value: dict[str, Any]) -> dict[str, Any]:
        reserved = {"notebook", "input_dir", "output_dir"} & set(value)
        if reserved:
            raise ValueError(f"{sorted(reserved)} are set by the harness and cannot be declared")
        return value

    @model_validator(mode="after")
    def _leaderboard_splits(self) -> TaskSpec:
        unknown = [s for s in self.leaderboard.splits if s not in self.data.splits["test"]]
        if unknown:
            raise ValueError(
                f"leaderboard.splits names {unknown}, which data.splits.test "
                f"({list(self.data.splits['test'])}) does not declare"
            )
        overlap = {self.data.split_column} & set(self.predictions.target_columns)
        if overlap:
            raise ValueError(f"data.split_column {self.data.split_column!r} clashes with a predicted column")
        return self

    # -- derived -------------------------------------------------------------------------------------------
    @property
    def task_dir(self) -> Path:
        """Absolute task folder (the one holding task.yaml)."""
        return self._task_dir

    @property
    def spec_file(self) -> Path:
        """Absolute path of task.yaml."""
        return self._task_dir / SPEC_FILE

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
    def target_columns(self) -> tuple[str, ...]:
        """The predicted columns (every prediction column but the id), in spec order."""
        return self.predictions.target_columns

    @property
    def data_root(self) -> Path:
        """Absolute folder that ``prepare`` fills."""
        return (self.task_dir / self.data.root).resolve()

    @property
    def public_dir(self) -> Path:
        """Absolute folder of the data teams may see."""
        return self.data_root / self.data.public

    @property
    def prepare_path(self) -> Path:
        """Absolute path of the prepare script."""
        return (self.task_dir / self.data.prepare).resolve()

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

    def splits(self, phase: str) -> tuple[str, ...]:
        """Split names of a phase's reference, in scoring order. Raises KeyError on a bad phase."""
        return self.data.splits[phase]  # type: ignore[index]

    def sandbox_limits(self) -> Limits:
        """The spec's limits as a sandbox :class:`Limits`."""
        return self.limits.to_limits()


# -- loading ---------------------------------------------------------------------------------------------------
class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a key given twice in one mapping (YAML would keep the last silently)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"key {key!r} appears twice in one mapping (lines {seen[key] + 1} and {key_node.start_mark.line + 1});"
                " keep one",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line
    loader.flatten_mapping(node)
    return dict(loader.construct_pairs(node, deep=deep))


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _field_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _unwrap(annotation: Any) -> list[Any]:
    """The model classes and containers an annotation may hold (``X | None`` gives ``[X]``)."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [t for arg in typing.get_args(annotation) for t in _unwrap(arg)]
    return [annotation]


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model that owns the mapping at ``loc`` (used to list the keys allowed there)."""
    current: Any = TaskSpec
    for part in loc:
        candidates = _unwrap(current)
        nxt = None
        for candidate in candidates:
            origin = typing.get_origin(candidate)
            if isinstance(candidate, type) and issubclass(candidate, BaseModel) and isinstance(part, str):
                field = candidate.model_fields.get(part)
                if field is not None:
                    nxt = field.annotation
            elif origin is tuple and isinstance(part, int):
                nxt = typing.get_args(candidate)[0]
            elif origin is dict and isinstance(part, str):
                nxt = typing.get_args(candidate)[1]
            if nxt is not None:
                break
        if nxt is None:
            return None
        current = nxt
    for candidate in _unwrap(current):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _describe(error: dict[str, Any]) -> str:
    """One sentence for one pydantic error: what was expected and what was found."""
    kind = error.get("type", "")
    found = error.get("input")
    ctx = error.get("ctx") or {}
    loc = tuple(error.get("loc", ()))
    if kind == "extra_forbidden":
        key = str(loc[-1]) if loc else "?"
        model = _model_at(loc[:-1])
        if model is None:
            return f"unknown key {key!r}; check its spelling"
        allowed = sorted(model.model_fields)
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown key {key!r}{hint}; allowed keys here: {', '.join(allowed)}"
    if kind == "missing":
        return "required key is missing"
    if kind == "literal_error":
        return f"expected {ctx.get('expected', '')}, got {found!r}"
    if kind in {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}:
        words = {
            "greater_than": "greater than",
            "greater_than_equal": "at least",
            "less_than": "less than",
            "less_than_equal": "at most",
        }[kind]
        bound = next(iter(ctx.values()), "?")
        bound = f"{bound:g}" if isinstance(bound, int | float) else bound
        return f"expected a number {words} {bound}, got {found!r}"
    if kind == "string_pattern_mismatch":
        return f"expected a value matching {ctx.get('pattern', '')!r}, got {found!r}"
    simple = {
        "int_parsing": "an integer",
        "int_type": "an integer",
        "int_from_float": "an integer",
        "float_parsing": "a number",
        "float_type": "a number",
        "bool_parsing": "true or false",
        "bool_type": "true or false",
        "string_type": "a string",
        "tuple_type": "a list",
        "list_type": "a list",
        "dict_type": "a mapping of keys",
        "model_type": "a mapping of keys",
        "model_attributes_type": "a mapping of keys",
    }
    if kind in simple:
        return f"expected {simple[kind]}, got {found!r}"
    msg = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    if kind in {"value_error", "assertion_error"}:
        return msg
    return f"{msg}, got {found!r}"


def _display_path(path: Path) -> str:
    """``path`` relative to the working folder when it lies below it, else absolute."""
    try:
        return os.path.relpath(path) if path.is_relative_to(Path.cwd()) else str(path)
    except ValueError:  # different drives on Windows
        return str(path)


def _classes_in(source: str) -> list[str]:
    """Top-level class names defined in a Python source (read with ``ast``; nothing is executed)."""
    return [node.name for node in ast.parse(source).body if isinstance(node, ast.ClassDef)]


def load_spec(task_dir: str | Path) -> TaskSpec:
    """Load and validate ``TASK_DIR/task.yaml``.

    Besides the schema it checks that the evaluator file exists and defines ``evaluator.class_name`` (read with
    ``ast``, without importing it) and that the hidden reference lies outside every folder teams can read.

    Args:
        task_dir: the task folder (or the task.yaml file itself).

    Returns:
        The validated, frozen :class:`TaskSpec`, with ``task_dir`` and ``spec_hash`` set.

    Raises:
        SpecError: the folder or file is missing, the YAML does not parse or repeats a key, or a field is wrong.
            ``file`` is the task.yaml (or evaluator) path, ``field`` the field path (``metrics[1].goal``); the
            message says what was expected and what was found. Only the first problem is raised; fix it and
            load again.
    """
    path = Path(task_dir)
    if path.is_file():
        path = path.parent
    path = path.resolve()
    spec_file = path / SPEC_FILE
    shown = _display_path(spec_file)
    if not spec_file.is_file():
        raise SpecError(f"no {SPEC_FILE} in {path}; a task folder holds task.yaml (see task_specs/)", shown)
    raw_bytes = spec_file.read_bytes()
    try:
        raw = yaml.load(raw_bytes, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise SpecError(f"not valid YAML: {exc}", shown) from None
    if not isinstance(raw, dict):
        raise SpecError(f"expected a mapping of keys at the top level, got {type(raw).__name__}", shown)
    try:
        spec = TaskSpec.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        # A misspelt key shows up twice: as an unknown key and as the required key it was meant to be. Name the
        # unknown one first, since its message suggests the right spelling.
        first: dict[str, Any] = dict(next((e for e in errors if e["type"] == "extra_forbidden"), errors[0]))
        raise SpecError(_describe(first), shown, _field_path(tuple(first["loc"]))) from None
    spec._task_dir = path
    evaluator_file = spec.evaluator_path
    if not evaluator_file.is_file():
        raise SpecError(
            f"evaluator file {spec.evaluator.path!r} does not exist (resolved to {evaluator_file}); "
            "fix the path, relative to the task folder",
            shown,
            "evaluator.path",
        )
    evaluator_bytes = evaluator_file.read_bytes()
    try:
        classes = _classes_in(evaluator_bytes.decode("utf-8"))
    except (SyntaxError, UnicodeDecodeError, ValueError) as exc:
        raise SpecError(
            f"evaluator file {spec.evaluator.path!r} is not valid Python: {exc}", shown, "evaluator.path"
        ) from None
    if spec.evaluator.class_name not in classes:
        raise SpecError(
            f"no class {spec.evaluator.class_name!r} in {spec.evaluator.path}; classes defined there: "
            f"{', '.join(classes) or 'none'}",
            shown,
            "evaluator.class_name",
        )
    digest = hashlib.sha256(raw_bytes)
    digest.update(evaluator_bytes)
    spec._spec_hash = digest.hexdigest()
    logger.debug("loaded task spec %s from %s (hash %s)", spec.id, spec_file, spec._spec_hash[:12])
    return spec
