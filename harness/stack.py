"""The sandbox's Python package set: the pinned data-science stack, a task's packages merged over it, and the
stand-in ``harness`` module every sandbox carries.

One list serves the Docker image (:mod:`harness.images`) and the process sandbox's virtual environment
(:mod:`harness.venvs`), so both offer a notebook exactly the same packages:

* :data:`ALWAYS_PACKAGES` (ipykernel, papermill: notebooks run inside the sandbox);
* the task's ``image.stack`` (:data:`STACKS`): ``data-science`` (default, :data:`DATA_SCIENCE_STACK`) or ``none``;
* the task's ``image.packages``; a package named there replaces the stack's pin of the same project.

The stand-in ``harness`` module (:data:`NOOP_HARNESS_SOURCE`) makes a self-check cell left in a submission
harmless: in the judges' run ``harness.check(...)`` prints one line saying self-checks do nothing there (in the
cell's output, which papermill's ``--log-output`` copies to the run's log) and returns ``None``, so the cells after
it, and the predictions they write, run as usual.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from harness.spec import ImageSpec

__all__ = [
    "ALWAYS_PACKAGES",
    "DATA_SCIENCE_STACK",
    "NOOP_HARNESS_NOTE",
    "NOOP_HARNESS_SOURCE",
    "STACKS",
    "image_packages",
    "project_name",
    "task_packages",
    "write_noop_harness",
]

#: Packages every sandbox carries (notebooks run inside it).
ALWAYS_PACKAGES = ("ipykernel", "papermill")

#: The data-science stack student notebooks import, pinned (CPython 3.11 manylinux wheels exist for each).
#: matplotlib's inline backend comes with ipykernel (matplotlib-inline). Bump a pin here to move every task that
#: uses the stack; tasks pinning the same project in ``image.packages`` keep their own pin.
DATA_SCIENCE_STACK = (
    "matplotlib==3.11.2",
    "numpy==2.4.6",
    "pandas==3.1.1",
    "pyarrow==26.0.1",
    "scikit-learn==1.9.1",
    "scipy==1.17.1",
    "seaborn==0.13.2",
    "statsmodels==0.15.0",
)

#: ``image.stack`` value -> the packages it brings.
STACKS: dict[str, tuple[str, ...]] = {"data-science": DATA_SCIENCE_STACK, "none": ()}

#: What the stand-in ``harness.check`` prints.
NOOP_HARNESS_NOTE = (
    "harness.check() does nothing in the judges' run: self-checks run only on your machine. "
    "This cell was skipped; the rest of the notebook runs as usual."
)

#: Source of the stand-in ``harness`` package installed in every sandbox (``harness/__init__.py``).
NOOP_HARNESS_SOURCE = f'''"""Stand-in for the hackathon harness in the judges' sandbox: self-checks do nothing here."""

__all__ = ["check"]

NOTE = {NOOP_HARNESS_NOTE!r}


def check(*args, **kwargs):
    """Do nothing but say so: one line in the cell's output (papermill copies it to the run's log); None."""
    print("[harness] " + NOTE, flush=True)
    return None
'''

_NAME = re.compile(r"^\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)")


def project_name(requirement: str) -> str:
    """The normalised project name of a pip requirement string (``"Scikit_Learn>=1.5"`` -> ``"scikit-learn"``).

    A string that does not start with a name (a URL, a path) is returned stripped, as its own key.
    """
    match = _NAME.match(requirement)
    if not match:
        return requirement.strip()
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def image_packages(packages: Iterable[str]) -> tuple[str, ...]:
    """The packages a sandbox installs: :data:`ALWAYS_PACKAGES` then ``packages``, stripped, unique, sorted.

    A later requirement of the same project replaces an earlier one (``"numpy==2.0"`` after ``"numpy"`` wins).
    """
    chosen: dict[str, str] = {}
    for requirement in (*ALWAYS_PACKAGES, *packages):
        requirement = requirement.strip()
        if requirement:
            chosen[project_name(requirement)] = requirement
    return tuple(sorted(chosen.values()))


def task_packages(image: ImageSpec) -> tuple[str, ...]:
    """Every requirement of a task's sandbox: always-there tools, its stack, then its own packages (which win).

    Args:
        image: the task's ``image`` section.

    Returns:
        Requirement strings, sorted (the order :func:`image_packages` gives).
    """
    return image_packages((*STACKS[image.stack], *image.packages))


def write_noop_harness(site_packages: Path) -> Path:
    """Write the stand-in ``harness`` package into a ``site-packages`` folder; returns its ``__init__.py``."""
    package = site_packages / "harness"
    package.mkdir(parents=True, exist_ok=True)
    init = package / "__init__.py"
    init.write_text(NOOP_HARNESS_SOURCE, encoding="utf-8")
    return init
