"""The hashes of what produced a run's scores, and how they are compared with the task as it is now.

Every scored run records ``provenance["inputs"]`` (a dict, sha256 hex digests unless said otherwise):

* ``evaluator``: the evaluator file and every module it imports from the task folder or the evaluator's own folder
  (found with :mod:`ast`, never by importing), each file's relative name and bytes;
* ``spec``: the bytes of ``task.yaml``;
* ``reference``: ``{phase: sha of the phase's reference file}`` (``""`` for a file that is missing);
* ``input``: the phase's input folder (every file's relative path and bytes);
* ``image_id``: the image the team's code ran in (``sha256:...`` from the engine; ``""`` for the process sandbox);
* ``harness_version``: the harness that scored it;
* ``predictions``: the kept predictions file the team wrote (``""`` when it wrote none).

:func:`task_inputs` hashes the task-level part once per batch (not per run); the pipeline adds the run's own
``image_id`` and ``predictions``. :func:`staleness` compares a run's recorded inputs with :func:`task_inputs` now and
says what changed, and :func:`stale_summary` turns that into lines for ``harness run``/``leaderboard``/``report``.
Runs recorded before inputs were kept have none: they are *provenance unknown*, never silently current.
"""

from __future__ import annotations

import ast
import hashlib
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.spec import PHASES, TaskSpec
from harness.version import __version__

__all__ = [
    "NEEDS_RERUN",
    "RESCORABLE",
    "Staleness",
    "check_runs",
    "current_image_id",
    "current_inputs",
    "evaluator_files",
    "file_sha256",
    "folder_sha256",
    "prepare_guard",
    "stale_report",
    "stale_summary",
    "staleness",
    "task_inputs",
]

#: Inputs whose change rescoring the kept predictions fixes (``harness rescore``).
RESCORABLE = ("evaluator", "spec", "reference", "harness_version")
#: Inputs whose change only running the team's code again fixes (``harness run --rerun``).
NEEDS_RERUN = ("input", "image_id")
#: Statuses whose outcome came from the evaluator (the evaluator, spec and reference can change them); a run that
#: failed, timed out or ran out of memory before scoring depends only on its inputs and image.
_SCORED = ("succeeded", "invalid_output", "evaluator_error")

#: What a changed input is called in messages.
_WHAT = {
    "evaluator": "evaluator changed",
    "spec": "task.yaml changed",
    "reference": "reference data changed",
    "harness_version": "harness version changed",
    "input": "input data changed",
    "image_id": "image rebuilt",
    "unknown": "provenance unknown",
}


def file_sha256(path: Path) -> str:
    """The sha256 hex digest of a file's bytes, ``""`` when it cannot be read (missing, a folder)."""
    digest = hashlib.sha256()
    try:
        with Path(path).open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return ""
    return digest.hexdigest()


def folder_sha256(root: Path) -> str:
    """sha256 over every regular file's relative posix path and bytes below ``root`` (links not followed; sorted);
    ``""`` when ``root`` is not a folder."""
    root = Path(root)
    if not root.is_dir():
        return ""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + file_sha256(path).encode() + b"\0")
    return digest.hexdigest()


def _imported_names(source: str) -> set[str]:
    """Top-level module names a Python source imports (``import a.b`` -> ``a``; ``from .c import d`` -> ``c``,
    ``c.d`` and ``d`` as candidates), read with :mod:`ast`; nothing is executed."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.module:
                names.add(node.module.split(".")[0])
            if node.level or not node.module:  # from . import x: x is a sibling module
                names.update(alias.name for alias in node.names)
    return names


def evaluator_files(spec: TaskSpec) -> list[Path]:
    """The evaluator file and every module it imports, transitively, from the task folder or the evaluator's
    folder (``name.py`` or the ``.py`` files of a package ``name/``), found by reading their sources with
    :mod:`ast`. Modules installed elsewhere (pandas, the harness) are not the task's and are not listed.

    Returns:
        Absolute paths, the evaluator first, then the others sorted. A module that cannot be parsed is listed but
        not followed.
    """
    first = spec.evaluator_path
    roots = list(dict.fromkeys([first.parent, spec.task_dir.resolve()]))
    seen: dict[Path, None] = {first: None}
    todo = [first]
    while todo:
        current = todo.pop()
        try:
            names = _imported_names(current.read_text(encoding="utf-8"))
        except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for name in sorted(names):
            for root in roots:
                candidates = [root / f"{name}.py"]
                package = root / name
                if (package / "__init__.py").is_file():
                    candidates += sorted(package.rglob("*.py"))
                for found in (c.resolve() for c in candidates if c.is_file()):
                    if found not in seen:
                        seen[found] = None
                        todo.append(found)
    rest = sorted(p for p in seen if p != first)
    return [first, *rest]


def _evaluator_sha(spec: TaskSpec) -> str:
    digest = hashlib.sha256()
    base = spec.task_dir.resolve()
    for path in evaluator_files(spec):
        try:
            name = path.relative_to(base).as_posix()
        except ValueError:
            name = path.as_posix()
        digest.update(name.encode() + b"\0" + file_sha256(path).encode() + b"\0")
    return digest.hexdigest()


def task_inputs(spec: TaskSpec, phase: str) -> dict[str, Any]:
    """The task-level inputs of a phase's scores, hashed now: once per batch, not once per run.

    Returns:
        ``{"evaluator": sha, "spec": sha, "reference": {phase: sha, ...}, "input": sha, "harness_version": str}``
        (every phase of the spec in ``reference``; ``input`` is the given phase's input folder). The pipeline adds
        ``image_id`` and ``predictions`` per run.

    Raises:
        KeyError: ``phase`` is not a phase of the spec.
    """
    input_dir = spec.input_dir(phase)
    return {
        "evaluator": _evaluator_sha(spec),
        "spec": file_sha256(spec.spec_file),
        "reference": {p: file_sha256(spec.reference_path(p)) for p in PHASES if p in spec.data.references},
        "input": folder_sha256(input_dir),
        "harness_version": __version__,
    }


def current_image_id(spec: TaskSpec) -> str | None:
    """The id of the task's image in the local Docker engine now, or ``None`` when it cannot be told (no engine
    answers, or the image is not built); never pulls."""
    host = os.environ.get("DOCKER_HOST", "")
    if not host or host.startswith("unix://"):  # a local socket: one plain request, without the docker SDK
        from harness.board_snapshot import local_image_id

        return local_image_id(spec.image_tag)
    try:
        from harness.sandbox.engine import DockerAPI

        api = DockerAPI()
    except Exception:  # no engine here: the image cannot be compared
        return None
    try:
        return api.image_id(spec.image_tag)
    except Exception:
        return None
    finally:
        api.close()


@dataclass(frozen=True)
class Staleness:
    """What changed since one run was scored.

    Attributes:
        changed: the inputs that differ now (names of :data:`RESCORABLE` and :data:`NEEDS_RERUN`), or
            ``("unknown",)`` for a run recorded without inputs; empty when the run is current.
    """

    changed: tuple[str, ...] = ()

    @property
    def stale(self) -> bool:
        """Whether the run's scores may no longer be what the task gives now."""
        return bool(self.changed)

    @property
    def needs_rerun(self) -> bool:
        """Whether only running the team's code again can make it current (its input data or image changed)."""
        return any(name in NEEDS_RERUN for name in self.changed)

    def describe(self) -> str:
        """``"evaluator changed, image rebuilt"``, or ``""`` when current (the leaderboard's ``stale`` cell)."""
        return ", ".join(_WHAT.get(name, f"{name} changed") for name in self.changed)


def staleness(recorded: Mapping[str, Any] | None, now: Mapping[str, Any], *, phase: str) -> Staleness:
    """Compare a run's recorded ``provenance["inputs"]`` with :func:`task_inputs` now.

    Args:
        recorded: the run's inputs (``None`` or empty: provenance unknown).
        now: :func:`task_inputs` of the run's phase, plus ``image_id`` when the engine told it (absent: the image
            is not compared).
        phase: the run's phase (only its reference is compared).
    """
    if not recorded:
        return Staleness(("unknown",))
    changed = []
    for name in ("evaluator", "spec", "harness_version", "input"):
        if name in now and recorded.get(name) != now[name]:
            changed.append(name)
    old_ref = (recorded.get("reference") or {}).get(phase)
    if old_ref != (now.get("reference") or {}).get(phase):
        changed.append("reference")
    image = now.get("image_id")
    if image and recorded.get("image_id") and recorded.get("image_id") != image:
        changed.append("image_id")
    order = (*RESCORABLE, *NEEDS_RERUN)
    return Staleness(tuple(sorted(changed, key=order.index)))


def stale_summary(stalenesses: Iterable[Staleness]) -> list[str]:
    """Lines for people: one per kind of change, with how many runs it affects and what fixes it.

    Example: ``["evaluator changed since 14 run(s) were scored: `harness rescore TASK` scores their kept
    predictions again", ...]``; ``[]`` when every run is current.
    """
    counts: Counter[str] = Counter()
    for item in stalenesses:
        counts.update(item.changed)
    lines = []
    for name in (*RESCORABLE, *NEEDS_RERUN, "unknown"):
        n = counts.get(name, 0)
        if not n:
            continue
        if name == "unknown":
            lines.append(
                f"{n} run(s) have unknown provenance (scored before inputs were recorded): `harness rescore TASK` "
                "records it for their kept predictions"
            )
        elif name in NEEDS_RERUN:
            lines.append(
                f"{_WHAT[name]} since {n} run(s) were scored: rescoring cannot fix that, only running the teams' "
                "code again: `harness run TASK_DIR SUBMISSIONS_DIR --rerun`"
            )
        else:
            lines.append(
                f"{_WHAT[name]} since {n} run(s) were scored: `harness rescore TASK` scores their kept predictions "
                "again (no team code runs)"
            )
    return lines


def current_inputs(spec: TaskSpec, phase: str) -> dict[str, Any]:
    """:func:`task_inputs` of a phase plus the image's id now, when the engine tells it (what runs are compared
    with)."""
    now = task_inputs(spec, phase)
    image = current_image_id(spec)
    if image:
        now["image_id"] = image
    return now


def check_runs(spec: TaskSpec, runs: Iterable[Any], *, phase: str = "test") -> list[Staleness]:
    """The :class:`Staleness` of each run (objects with a ``provenance`` dict and a ``status``, e.g.
    :class:`~harness.store.ScoredRun`), in order; the task's inputs are hashed once.

    A rejected run is never stale; a run that failed before scoring (failed, timed_out, out_of_memory,
    harness_error) is stale only when its input data or image changed, as no evaluator or reference touched it.
    """
    now = current_inputs(spec, phase)
    out = []
    for run in runs:
        item = staleness(run.provenance.get("inputs"), now, phase=phase)
        status = str(getattr(run, "status", _SCORED[0]))
        if status == "rejected":  # refused at the door: nothing ran, nothing can be stale
            item = Staleness()
        elif status not in _SCORED:  # its code failed before any scoring: only new inputs or image can matter
            item = Staleness(tuple(name for name in item.changed if name in NEEDS_RERUN))
        out.append(item)
    return out


def stale_report(
    spec: TaskSpec,
    store: Any,
    *,
    phase: str = "test",
    runs: Sequence[Any] | None = None,
    stale: Sequence[Staleness] | None = None,
) -> list[str]:
    """:func:`stale_summary` of a task's active runs in a store (a :class:`~harness.store.Store`); ``[]`` when
    every active run is current or there are none. ``TASK`` in the lines is replaced by the task's id or folder.

    ``runs`` (the active runs of ``phase``, already read) and ``stale`` (their :func:`check_runs`, already made)
    spare a caller that has them a second read and a second hashing of the task's inputs.
    """
    if runs is None:
        runs = store.runs(spec.id, phase=phase)
    if not runs:
        return []
    lines = stale_summary(check_runs(spec, runs, phase=phase) if stale is None else stale)
    return [
        line.replace("rescore TASK", f"rescore {spec.task_dir}").replace("run TASK_DIR", f"run {spec.task_dir}")
        for line in lines
    ]


def prepare_guard(store: Any, *, force: bool, echo: Any = print) -> Any:
    """A ``guard`` for :func:`harness.tasks_prepare.prepare_task`: refuse new data under a task's scored runs.

    Args:
        store: the results store (a :class:`~harness.store.Store`) whose active runs the data would change under.
        force: replace the data anyway (the message then says what to do next).
        echo: called with that message when forced.

    Returns:
        ``guard(spec, changed)``, raising :class:`~harness.errors.PrepareError` when the task has active runs in
        ``store`` and ``force`` is false.
    """
    from harness.errors import PrepareError

    def guard(spec: TaskSpec, changed: list[str]) -> None:
        runs = [run for phase in PHASES for run in store.runs(spec.id, phase=phase)] if store.has_task(spec.id) else []
        if not runs:
            return
        references = {spec.data.references[p] for p in spec.data.references}
        inputs = [str(spec.data.inputs[p]).rstrip("/") + "/" for p in spec.data.inputs]
        ref_changed = [name for name in changed if name in references]
        input_changed = [name for name in changed if any(name.startswith(prefix) for prefix in inputs)]
        shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
        what = []
        if ref_changed:
            what.append("reference data (then `harness rescore` scores the kept predictions again)")
        if input_changed:
            what.append("input data (then only `harness run --rerun` makes the scores current)")
        said = (
            f"this prepare would change {len(changed)} file(s) of {spec.id}'s data ({shown}) under {len(runs)} "
            f"scored run(s) in the store at {store._safe_url()}"
            + (f"; it changes the {' and the '.join(what)}" if what else "")
        )
        if force:
            echo(f"--force: {said}; replacing it")
            return
        raise PrepareError(
            f"{said}. The new data was discarded and the old data kept: a prepare script should give the same data "
            "every time. Give --force to replace it anyway",
            str(spec.prepare_path),
            "data.prepare",
        )

    return guard
