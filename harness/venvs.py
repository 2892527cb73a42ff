"""Cached virtual environments with a task's package set, for the process sandbox (self-checks without Docker).

:func:`ensure_task_venv` makes ``<cache>/venvs/<key>`` once per package set: ``python -m venv``, then pip installs
:func:`harness.stack.task_packages` of the task (the package list of its Docker image). When this machine's Python
is CPython 3.11 on Linux x86_64 (the image's), the wheels are those of the image (:func:`harness.images.
download_wheels`, the same cache) installed with ``--no-index``; otherwise pip installs the same requirement strings
from the package index. The stand-in ``harness`` module of the image and the kernel's message packer with its
``etc/ipython`` config (:mod:`harness.stack`) are added, and the ``python3`` kernel is registered inside the
environment. The key hashes the package list, this Python's version, the recipe (:data:`VENV_RECIPE_VERSION`) and
those added files; a folder is complete when it holds ``.complete``.

When no environment can be made (no ``venv`` module, pip fails, no index reachable), :func:`ensure_task_venv`
raises :class:`~harness.errors.ImageError`; the self-check then runs with the harness's own Python and says so.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.cache import build_once
from harness.errors import ImageError
from harness.images import IMAGE_PYTHON, cache_dir, download_wheels
from harness.spec import TaskSpec
from harness.stack import sandbox_support_digest, task_packages, write_kernel_config, write_noop_harness

__all__ = ["VENV_RECIPE_VERSION", "ensure_task_venv", "venv_dir", "wheels_fit_here"]

#: Version of the environment recipe; bump it to rebuild every cached environment.
VENV_RECIPE_VERSION = "1"

Echo = Callable[[str], Any]


def wheels_fit_here() -> bool:
    """Whether the image's wheels (CPython 3.11, manylinux x86_64) install into this machine's Python."""
    return (
        sys.implementation.name == "cpython"
        and f"{sys.version_info.major}.{sys.version_info.minor}" == IMAGE_PYTHON
        and sys.platform == "linux"
        and platform.machine() == "x86_64"
    )


def venv_dir(packages: tuple[str, ...]) -> Path:
    """The cache folder of the environment of a package set (see the module docs for the key)."""
    support = sandbox_support_digest()
    payload = [VENV_RECIPE_VERSION, sys.version, sys.platform, platform.machine(), list(packages), support]
    key = hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:16]
    return cache_dir() / "venvs" / key


def _run(argv: list[str], what: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ImageError(f"{what} failed (exit {proc.returncode}): {(proc.stdout + proc.stderr).strip()[-1200:]}")


def _python(folder: Path) -> Path:
    return folder / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def ensure_task_venv(spec: TaskSpec, *, echo: Echo = print) -> Path:
    """The Python of a cached virtual environment holding exactly the task's package set; made once.

    Args:
        spec: the task; its ``image`` section gives the packages (as for the Docker image).
        echo: progress messages.

    Returns:
        The environment's ``python`` executable.

    Raises:
        ImageError: the environment cannot be made (the message says which step failed and pip's last words).
    """
    packages = task_packages(spec.image)
    dest = venv_dir(packages)

    def build(folder: Path) -> str:
        echo(f"making a virtual environment with the task's {len(packages)} package(s) (once, cached)")
        base = getattr(sys, "_base_executable", sys.executable)
        _run([base, "-m", "venv", str(folder)], "python -m venv")
        python = _python(folder)
        install = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-cache-dir"]
        if wheels_fit_here():
            wheels = download_wheels(packages, echo=echo)
            install += ["--no-index", "--find-links", str(wheels)]
        _run([*install, *packages], "pip install of the task's packages")
        _run(
            [str(python), "-m", "ipykernel", "install", "--prefix", str(folder), "--name", "python3"],
            "registering the python3 kernel",
        )
        site = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        if not site or not Path(site).is_dir():
            raise ImageError(f"the new environment {folder} has no site-packages folder")
        write_noop_harness(Path(site))
        write_kernel_config(folder)
        return "\n".join(packages) + "\n"

    build_once(dest, build)
    return _python(dest)
