"""Building a task's data: its prepare script, run in an isolated cached Python environment, swapped in atomically.

``harness task prepare TASK_DIR`` (:func:`prepare_task`) runs the spec's prepare script into a fresh temporary
folder next to the data root and swaps it in only when the script succeeded, so a failed or interrupted prepare
never leaves half a data folder behind.

The script never runs with the harness's own Python. :func:`prepare_environment` makes (once, then reuses) a
virtual environment holding exactly the spec's ``data.prepare_packages``, under the settings' cache folder
(``prepare-envs/<key>``, the key a hash of the sorted package list and the Python version); an empty list gives an
environment with the standard library only. A file lock keeps two prepares from building one environment at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from filelock import FileLock

from harness.cache import build_once
from harness.errors import PrepareError, SpecError
from harness.settings import get_settings
from harness.spec import TaskSpec, load_spec

__all__ = [
    "MANIFEST_FILE",
    "PACKAGES_FIELD",
    "file_hashes",
    "file_sha256",
    "manifest_path",
    "prepare_environment",
    "prepare_task",
    "run_prepare",
    "summarise_files",
]

logger = logging.getLogger(__name__)

Echo = Callable[[str], Any]

#: The spec key naming prepare's packages (named in every error about them).
PACKAGES_FIELD = "data.prepare_packages"
_PREPARE_TAIL_LINES = 30
_PIP_TAIL_LINES = 15
#: Marks a finished environment; an environment folder without it is a leftover and is rebuilt.
#: Variables that would let the harness's own packages into the prepare script's Python.
_LEAKY_ENV = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "VIRTUAL_ENV", "__PYVENV_LAUNCHER__")


# -- files -----------------------------------------------------------------------------------------------------
def file_sha256(path: Path) -> str:
    """The sha256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_hashes(root: Path) -> dict[str, str]:
    """``{relative posix path: sha256 hex}`` of every regular file below ``root`` (sorted; links not followed)."""
    return {
        path.relative_to(root).as_posix(): file_sha256(path)
        for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    }


def summarise_files(folder: Path, *, list_up_to: int = 8) -> str:
    """One line counting a folder's files: loose files by name (when few), each sub-folder by its file count.

    Example: ``"3 files (test.csv, train.csv, weather.csv); images/: 1,797 files"``. Never one entry per file of a
    large folder. ``"empty"`` when the folder holds no file; ``"missing"`` when it does not exist.
    """
    if not folder.is_dir():
        return "missing"
    loose = sorted(p.name for p in folder.iterdir() if p.is_file())
    parts: list[str] = []
    if loose:
        noun = "file" if len(loose) == 1 else "files"
        names = f" ({', '.join(loose)})" if len(loose) <= list_up_to else ""
        parts.append(f"{len(loose):,} {noun}{names}")
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        count = sum(1 for p in sub.rglob("*") if p.is_file())
        parts.append(f"{sub.name}/: {count:,} {'file' if count == 1 else 'files'}")
    return "; ".join(parts) or "empty"


# -- the environment -------------------------------------------------------------------------------------------
def _env_key(packages: Iterable[str]) -> str:
    pkgs = sorted({p.strip() for p in packages})
    python = f"{sys.implementation.name}-{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
    return hashlib.sha256(json.dumps([python, pkgs]).encode()).hexdigest()[:16]


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _LEAKY_ENV}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def _base_python() -> str:
    """The interpreter new environments are made from: the base of the harness's own venv when it runs in one."""
    return getattr(sys, "_base_executable", "") or sys.executable


def _failed_package(output: str, packages: list[str]) -> str | None:
    """The requirement pip could not install, read from its output (``... for nosuchpkg==1.0``), or ``None``."""
    for pattern in (
        r"No matching distribution found for (\S+)",
        r"Could not find a version that satisfies the requirement (\S+)",
        r"Invalid requirement: '([^']+)'",
        r"Failed to build (\S+)",
    ):
        found = re.search(pattern, output)
        if found:
            name = found.group(1).strip("'\"")
            key = re.split(r"[<>=!~\[; ]", name, maxsplit=1)[0].lower().replace("_", "-")
            return next(
                (p for p in packages if re.split(r"[<>=!~\[; ]", p, maxsplit=1)[0].lower().replace("_", "-") == key),
                name,
            )
    return None


def prepare_environment(spec: TaskSpec, echo: Echo = print) -> Path:
    """The Python interpreter of the isolated environment holding the spec's ``data.prepare_packages``.

    Made once per package set and Python version under ``<cache folder>/prepare-envs/<key>`` (``python -m venv``,
    then ``pip install`` of the packages; no pip at all for an empty list), and reused afterwards. A file lock
    beside the folder serialises two prepares building the same environment.

    Args:
        spec: the task spec (its ``data.prepare_packages``: pip requirement strings, order and repeats do not
            matter).
        echo: called with progress lines (only when the environment is built).

    Returns:
        The absolute path of the environment's ``python``.

    Raises:
        PrepareError: the environment cannot be made, or a package cannot be installed (the message names the
            package and ``data.prepare_packages``, ``output`` holds pip's last lines).
    """
    packages = sorted({p.strip() for p in spec.data.prepare_packages})
    root = get_settings().cache_folder() / "prepare-envs"
    env_dir = root / _env_key(packages)
    python = env_dir / "bin" / "python"

    def build(folder: Path) -> str:
        shown = ", ".join(packages) if packages else "the standard library only"
        echo(f"making the prepare environment ({shown}) in {folder}")
        _build_environment(spec, folder, packages, echo)
        return json.dumps({"packages": packages, "python": sys.version})

    if not build_once(env_dir, build):
        return python
    logger.info("prepare environment for %s made in %s", packages, env_dir)
    return python


def _build_environment(spec: TaskSpec, env_dir: Path, packages: list[str], echo: Echo) -> None:
    venv = [_base_python(), "-m", "venv", *([] if packages else ["--without-pip"]), str(env_dir)]
    made = subprocess.run(venv, capture_output=True, text=True, env=_clean_env(), check=False)
    if made.returncode != 0:
        raise PrepareError(
            f"cannot make a virtual environment for the prepare script (`{' '.join(venv)}` exited "
            f"{made.returncode}); install Python's venv module (Debian: python3-venv)",
            str(spec.spec_file),
            PACKAGES_FIELD,
            (made.stdout + made.stderr).strip()[-2000:],
        )
    if not packages:
        return
    started = time.monotonic()
    pip = [str(env_dir / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
    proc = subprocess.run([*pip, *packages], capture_output=True, text=True, env=_clean_env(), check=False)
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr).strip()
        tail = "\n".join(output.splitlines()[-_PIP_TAIL_LINES:])
        failed = _failed_package(output, packages)
        what = f"package {failed!r}" if failed else f"the packages {packages}"
        raise PrepareError(
            f"cannot install {what} for the prepare script (pip exited {proc.returncode}); fix or remove it in "
            f"{PACKAGES_FIELD} (a pip requirement such as 'pandas==2.2.3' that pip on this machine can find)",
            str(spec.spec_file),
            PACKAGES_FIELD,
            tail,
        )
    echo(f"installed {', '.join(packages)} in {time.monotonic() - started:.1f} s")


# -- the script ------------------------------------------------------------------------------------------------
def run_prepare(spec: TaskSpec, out: Path, echo: Echo = print, timeout_s: float | None = None) -> None:
    """Run the spec's prepare script as ``python PREPARE OUT`` in its isolated environment, in the task folder.

    Echoes each line the script prints as it comes (indented); kills its process group on timeout or interrupt.

    Args:
        spec: the task spec.
        out: the folder the script writes into (exists, empty).
        echo: called with progress and output lines.
        timeout_s: stop the script after this many seconds (``None``: no limit).

    Raises:
        SpecError: the prepare script does not exist (``data.prepare``).
        PrepareError: the environment cannot be made, or the script fails or exceeds ``timeout_s``.
    """
    script = spec.prepare_path
    if not script.is_file():
        raise SpecError(
            f"prepare script {spec.data.prepare!r} does not exist (resolved to {script})",
            str(spec.spec_file),
            "data.prepare",
        )
    python = prepare_environment(spec, echo)
    tail: deque[str] = deque(maxlen=_PREPARE_TAIL_LINES)
    proc = subprocess.Popen(
        [str(python), str(script), str(out)],
        cwd=spec.task_dir,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
        env=_clean_env(),
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
        raise PrepareError(
            f"{spec.data.prepare} did not finish within {timeout_s:g} s", str(script), "data.prepare"
        ) from None
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        reader.join(timeout=5)
    if returncode != 0:
        hint = ""
        if any("ModuleNotFoundError" in line for line in tail):
            hint = f" (a module it imports is missing: list its package in {PACKAGES_FIELD})"
        shown = "\n".join(tail)
        raise PrepareError(
            f"{spec.data.prepare} failed with exit code {returncode}{hint}; its last output:\n{shown}",
            str(script),
            "data.prepare",
        )


#: File name of the prepared data's manifest, inside the data root (not a file of the data: no hash covers it).
MANIFEST_FILE = ".harness-manifest.json"


def manifest_path(spec: TaskSpec) -> Path:
    """Where :func:`prepare_task` records the prepared data's hashes: :data:`MANIFEST_FILE` in the data root
    (``task_specs/<id>/data/.harness-manifest.json``: ``{"task", "prepared_at", "files": {path: sha256}}``)."""
    return spec.data_root / MANIFEST_FILE


def _data_hashes(root: Path) -> dict[str, str]:
    """:func:`file_hashes` of a data root without its manifest."""
    return {name: sha for name, sha in file_hashes(root).items() if name != MANIFEST_FILE}


def _changed_files(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """Relative names added, removed or changed between two :func:`file_hashes`, sorted."""
    return sorted(name for name in set(old) | set(new) if old.get(name) != new.get(name))


def _write_manifest(spec: TaskSpec, hashes: dict[str, str]) -> None:
    import datetime as dt

    path = manifest_path(spec)
    record = {"task": spec.id, "prepared_at": dt.datetime.now(dt.UTC).isoformat(), "files": hashes}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def prepare_task(
    task_dir: str | Path,
    echo: Echo = print,
    *,
    timeout_s: float | None = None,
    guard: Callable[[TaskSpec, list[str]], None] | None = None,
) -> Path:
    """Build a task's data by running its prepare script, atomically.

    Runs the script (see :func:`run_prepare`) into ``OUT``, a fresh folder beside the data root. Only when the
    script exits 0 does ``OUT`` replace the data root; when the new data is byte-identical to the old, the old
    folder is kept untouched (so a sandbox that has it mounted is not disturbed). A lock file beside the data root
    serialises concurrent prepares of one task; leftovers of an interrupted prepare (``.data.building-*``) are
    removed under that lock.

    Args:
        task_dir: the task folder (holding task.yaml).
        echo: called with each progress line and each line the script prints.
        timeout_s: stop the script after this many seconds (``None``: no limit).
        guard: called as ``guard(spec, changed)`` with the relative names of the files the new data would add,
            remove or change, before it replaces existing data; raising there keeps the old data (the new build is
            removed). ``harness task prepare`` refuses so when scored runs exist, unless ``--force``.

    Every prepare that ends with data in place records its files' sha256 in :func:`manifest_path`.

    Returns:
        The absolute data root (``spec.data_root``), now holding the prepared data.

    Raises:
        SpecError: the spec is invalid or the prepare script is missing.
        PrepareError: a prepare package cannot be installed, or the script fails or exceeds ``timeout_s``; or
            the guard refused.
    """
    spec = load_spec(task_dir)
    if not spec.prepare_path.is_file():
        raise SpecError(
            f"prepare script {spec.data.prepare!r} does not exist (resolved to {spec.prepare_path})",
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
            echo(f"preparing {spec.id}: python {spec.data.prepare} {build.name}")
            started = time.monotonic()
            run_prepare(spec, build, echo, timeout_s)
            echo(f"prepare finished in {time.monotonic() - started:.1f} s: {summarise_files(build)}")
            new = file_hashes(build)
            before = _data_hashes(root) if root.is_dir() else None
            if before == new:
                echo(f"the data is unchanged; kept {root}")
                shutil.rmtree(build)
                _write_manifest(spec, new)
                return root
            if before is not None and guard is not None:
                guard(spec, _changed_files(before, new))
            old = root.with_name(f".{root.name}.old-{uuid.uuid4().hex[:8]}")
            if root.exists():
                root.rename(old)
            build.rename(root)
            shutil.rmtree(old, ignore_errors=True)
            _write_manifest(spec, new)
        except BaseException:
            shutil.rmtree(build, ignore_errors=True)
            raise
    logger.info("prepared %s into %s", spec.id, root)
    return root
