"""``harness task new``: the skeleton of a new task of one kind, which ``harness task validate`` passes as written.

:func:`new_task` writes, under an organiser's folder (``root``)::

    task_specs/<id>/task.yaml            the spec, commented; every placeholder marked TODO(author)
    task_specs/<id>/README.md            the teams' README
    task_specs/<id>/prepare.py           deterministic small synthetic data (standard library only)
    task_specs/<id>/starter/solution.ipynb   the starter notebook (a cell tagged ``parameters``): the baseline
    evaluators/<id_with_underscores>.py  the evaluator, with scikit-learn's metrics
    examples/submissions/<id>/{good,baseline,broken}/main.py   example submissions

The kinds (:data:`KINDS`) use the column kinds of :mod:`harness.spec_predictions`: ``regression`` a number with
bounds, ``classification`` a probability group, ``forecast`` a quantile group, ``files`` a label per input file.
The templates are package data (``harness/skeleton/templates/``, read with :mod:`importlib.resources`); their
examples use only the standard library, so the skeleton's image is the small ``stack: none`` one.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from string import Template

import nbformat

from harness.errors import HarnessError

__all__ = ["KINDS", "TODO_MARK", "new_task"]

#: The kinds of skeleton, with the one-line description written into task.yaml.
KINDS: dict[str, str] = {
    "regression": "Skeleton: predict a number y from two features.",
    "classification": "Skeleton: give the probability of each of three classes from two features.",
    "forecast": "Skeleton: forecast hourly demand as three quantiles.",
    "files": "Skeleton: label the signal in each input file as rising, falling or flat.",
}
#: The marker of every placeholder an author must replace.
TODO_MARK = "TODO(author)"

_ID = re.compile(r"^[a-z][a-z0-9-]*[a-z0-9]$")
#: Longest task id (``TaskSpec.id`` allows the same): it names folders, a module and an image tag.
MAX_ID_LENGTH = 64
_EXAMPLES = {"baseline": "Baseline", "good": "A good submission", "broken": "A broken submission"}


def _template(*parts: str) -> str:
    return resources.files("harness.skeleton").joinpath("templates", *parts).read_text(encoding="utf-8")


def _imports(code: str, always: tuple[str, ...]) -> str:
    """The import lines of the standard-library modules ``code`` uses (plus ``always``), sorted."""
    used = [m for m in ("csv", "math", "os", "random", "statistics", "sys") if m in always or f"{m}." in code]
    return "\n".join([*(f"import {m}" for m in used), "from pathlib import Path"])


def _script(body: str, what: str, values: dict[str, str]) -> str:
    imports = _imports(body, ("csv", "os"))
    return Template(_template("common", "script.py.tmpl")).substitute(
        values, body=body.rstrip("\n"), what=what, imports=imports
    )


def _notebook(body: str, title: str) -> str:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    intro = nbformat.v4.new_markdown_cell(
        f"# {title}: starter notebook\n\nThe baseline: read `train.csv` and `test.csv` from `input_dir`, write "
        "`predictions.csv` into `output_dir`. Improve it, then self-check: `harness check task solution.ipynb`.\n\n"
        f"{TODO_MARK}: the teams' first notebook; keep the cell tagged `parameters` (the harness sets the folders "
        "there)."
    )
    params = nbformat.v4.new_code_cell('input_dir = "data"\noutput_dir = "output"')
    params.metadata["tags"] = ["parameters"]
    imports = _imports(body, ("csv",)) + "\n\n"
    code = nbformat.v4.new_code_cell(imports + "input_dir, output_dir = Path(input_dir), Path(output_dir)\n\n" + body)
    for cell, cell_id in zip((intro, params, code), ("intro", "parameters", "baseline"), strict=True):
        cell["id"] = cell_id
    nb.cells = [intro, params, code]
    return nbformat.writes(nb) + "\n"


def new_task(task_id: str, kind: str, root: Path | str = ".") -> Path:
    """Write the skeleton of task ``task_id`` of ``kind`` under ``root`` (see the module docstring).

    Args:
        task_id: the new task's id: lower-case letters, digits and dashes (``parking-demand``).
        kind: one of :data:`KINDS`.
        root: the organiser's folder (``task_specs/``, ``evaluators/``, ``examples/`` are made in it).

    Returns:
        The new task folder, ``root/task_specs/<task_id>`` (absolute).

    Raises:
        HarnessError: an unknown kind, an id that is not a slug, or a file of the skeleton already exists
            (nothing is written then).
    """
    if kind not in KINDS:
        raise HarnessError(f"unknown task kind {kind!r}; expected one of {', '.join(KINDS)}")
    if len(task_id) > MAX_ID_LENGTH:
        raise HarnessError(
            f"task id {task_id[:40]!r}... is {len(task_id)} characters long; use at most {MAX_ID_LENGTH} (it names "
            "the task's folders, evaluator module and image tag, and file names stop at 255 bytes)"
        )
    if not _ID.match(task_id):
        raise HarnessError(
            f"task id {task_id!r} is not a slug: use lower-case letters, digits and dashes, starting with a letter "
            "(e.g. parking-demand)"
        )
    base = Path(root).resolve()
    module = task_id.replace("-", "_")
    task_dir = base / "task_specs" / task_id
    examples = base / "examples" / "submissions" / task_id
    title = task_id.replace("-", " ").capitalize()
    values = {
        "task_id": task_id,
        "kind": kind,
        "title": title,
        "module": module,
        "class_name": "".join(part.capitalize() for part in module.split("_")) + "Evaluator",
        "description": KINDS[kind],
        "predictions": _template(kind, "predictions.yaml.tmpl").rstrip("\n"),
        "metrics": _template(kind, "metrics.yaml.tmpl").rstrip("\n"),
        "about": _template(kind, "about.md.tmpl").rstrip("\n"),
        "make_rows": _template(kind, "rows.py.tmpl").rstrip("\n"),
        "prepare_io": _template("common", "prepare_io.py.tmpl").rstrip("\n"),
        "after": "\n    _write_files(out, rows)" if kind == "files" else "",
        "data_doc": f"small synthetic data for a {kind} task, the same on every run.",
    }
    bodies = {name: _template(kind, f"{name}.py.tmpl") for name in ("baseline", "good")}
    bodies["broken"] = _template("common", "broken.py.tmpl")
    files = {
        task_dir / "task.yaml": Template(_template("common", "task.yaml.tmpl")).substitute(values),
        task_dir / "README.md": Template(_template("common", "README.md.tmpl")).substitute(values),
        task_dir / "prepare.py": Template(_template("common", "prepare.py.tmpl")).substitute(
            values, imports=_imports(values["make_rows"], ("csv", "random", "sys"))
        ),
        task_dir / "starter" / "solution.ipynb": _notebook(bodies["baseline"], title),
        base / "evaluators" / f"{module}.py": Template(_template(kind, "evaluator.py.tmpl")).substitute(values),
    }
    for name, what in _EXAMPLES.items():
        files[examples / name / "main.py"] = _script(bodies[name], what, values)
    existing = [str(path) for path in files if path.exists()]
    if existing or task_dir.exists():
        raise HarnessError(
            f"task {task_id!r} already exists under {base} ({', '.join(existing) or task_dir}); choose another id "
            "or remove those files"
        )
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return task_dir
