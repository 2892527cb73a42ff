"""Starter kits: everything a team needs to work on a task and self-check, and nothing it must not see.

A kit is a folder::

    README.md         the task's README for teams, plus how to self-check
    SANDBOX_PACKAGES.md  the Python packages and versions of the judges' sandbox, generated from the task image
    solution.ipynb    the template notebook (a cell tagged ``parameters``)
    data/             the public data (labelled train and validation data, extra tables)
    task/             a self-contained task folder for ``harness check``: task.yaml, the evaluator, the
                      validation input and validation labels. Never the hidden test reference.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

import yaml

from harness.errors import HarnessError, SpecError
from harness.image_io import PACKAGES_FILE, packages_markdown, sandbox_packages
from harness.spec import SPEC_FILE, TaskSpec, load_spec

__all__ = ["write_starter_kit"]

log = logging.getLogger(__name__)

TEMPLATE_DIR = "starter"

_SELF_CHECK = """

## Self-check your submission (the judges' exact code path)

This kit holds a `task/` folder with the task's spec, its evaluator and the validation split. The self-check runs
your submission exactly as the judges will: the same sandbox, limits, output validation and evaluator, on the
validation split instead of the hidden test split.

You need the `harness` command: install the harness package your organisers name (for example
`pip install hackathon-harness`, or the wheel they hand out) in the Python environment you work in, and Docker
for the judges' sandbox. Run the commands below in this kit's folder.

```bash
harness image load task-image.tar        # once: the image file your organisers hand out (no root needed), or
harness image build task                 # once: build the image yourself (needs root the first time, for its base)
harness check task solution.ipynb        # or a folder / .zip with main.py
```

The sandbox has exactly the Python packages listed in `SANDBOX_PACKAGES.md`, and no network: nothing can be
installed or downloaded at run time.

No Docker on your laptop? `harness check task solution.ipynb --sandbox process` runs the same steps in a local
process with the time and memory limits, in a virtual environment with the sandbox's packages (made once and
cached), but without isolation and with your network: it lists what it could not check before its verdict.
From a notebook cell:

```python
import harness
harness.check("task", "solution.ipynb")
```

A `PASS` line means the judges' run would score your submission. Keep the cell tagged `parameters` in your
notebook: the harness sets `input_dir` and `output_dir` there. A `harness.check(...)` cell left in a submission is
harmless: in the judges' run it only prints that self-checks do nothing there.
"""


def _contains_copy_of(folder: Path, secret: Path) -> bool:
    """Whether any file under ``folder`` has the same bytes as ``secret`` (compared by size, then content)."""
    size = secret.stat().st_size
    content: bytes | None = None
    for path in folder.rglob("*"):
        if path.is_file() and path.stat().st_size == size:
            content = content if content is not None else secret.read_bytes()
            if path.read_bytes() == content:
                return True
    return False


def _built_packages(spec: TaskSpec) -> tuple[str, ...] | None:
    """The task image's ``name==version`` list, or ``None`` (logged) when there is no engine or no built image."""
    try:
        return sandbox_packages(spec)
    except HarnessError as exc:  # no engine, no image: the page lists the requirements instead
        log.warning("the kit's %s lists the task's requirements, not the image's versions: %s", PACKAGES_FILE, exc)
        return None


def write_starter_kit(task_dir: str | Path, dest: str | Path) -> Path:
    """Write a team's starter kit for a task (see the module docstring for its layout).

    Args:
        task_dir: the task folder (holding task.yaml and ``starter/``), with its data prepared.
        dest: a folder that does not exist yet, or is empty.

    Returns:
        The kit folder (absolute).

    Raises:
        SpecError: the spec is invalid, the data is not prepared, or the task has no ``starter/`` template.
        FileExistsError: ``dest`` exists and is not empty.
    """
    spec = load_spec(task_dir)
    dest = Path(dest).resolve()
    if dest.exists() and any(dest.iterdir()):
        raise FileExistsError(f"{dest} exists and is not empty; give a new folder for the starter kit")
    template = spec.task_dir / TEMPLATE_DIR
    if not template.is_dir():
        raise SpecError(f"the task has no {TEMPLATE_DIR}/ folder with a template notebook", str(spec.task_dir))
    needed = [spec.public_dir, spec.input_dir("validation"), spec.reference_path("validation")]
    missing = [p for p in needed if not p.exists()]
    if missing:
        raise SpecError(
            f"prepared data is missing ({', '.join(map(str, missing))}); run `harness task prepare {spec.task_dir}`",
            str(spec.task_dir),
        )
    hidden = spec.reference_path("test").resolve()

    staging = Path(tempfile.mkdtemp(prefix=".starter-", dir=dest.parent if dest.parent.exists() else None))
    try:
        readme = spec.task_dir / "README.md"
        text = readme.read_text(encoding="utf-8") if readme.is_file() else f"# {spec.title}\n\n{spec.description}\n"
        (staging / "README.md").write_text(text.rstrip() + _SELF_CHECK, encoding="utf-8")
        (staging / PACKAGES_FILE).write_text(packages_markdown(spec, _built_packages(spec)), encoding="utf-8")
        shutil.copytree(template, staging, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        shutil.copytree(spec.public_dir, staging / "data")

        task = staging / "task"
        data_root = task / spec.data.root
        shutil.copytree(spec.input_dir("validation"), data_root / spec.data.inputs["validation"])
        reference = data_root / spec.data.references["validation"]
        reference.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(spec.reference_path("validation"), reference)
        shutil.copy2(spec.evaluator_path, task / "evaluator.py")

        raw = yaml.safe_load((spec.task_dir / SPEC_FILE).read_text(encoding="utf-8"))
        raw["evaluator"]["path"] = "evaluator.py"
        raw.pop("baseline", None)
        header = (
            f"# Starter-kit copy of task {spec.id!r} for self-checks: validation split only.\n"
            "# The judges use the original spec; the hidden test reference is not part of this kit.\n"
        )
        (task / SPEC_FILE).write_text(header + yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")

        if hidden.is_file() and _contains_copy_of(staging, hidden):
            raise SpecError(
                f"the hidden test reference {hidden} would end up in the starter kit; keep it out of data.public",
                SPEC_FILE,
                "data.public",
            )
        load_spec(task)  # the kit's task folder must be valid on its own
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            dest.rmdir()
        staging.rename(dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("starter kit for %s written to %s", spec.id, dest)
    return dest
