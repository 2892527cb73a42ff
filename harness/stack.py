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

Every sandbox's kernel also sends its messages through :data:`KERNEL_SESSION_SOURCE` (``Session.packer``, set in
the environment's ``etc/ipython/ipython_kernel_config.py``): jupyter_client's own packer raises on text holding a
lone surrogate (``print("\\ud800")``) inside the kernel's IOPub thread, which drops that output and, now and then,
the messages queued behind it, so that papermill waits for a cell that has finished until the time limit (measured
with ipykernel 7.4.0 and 6.31.0: 4 and 1 of 150 runs of the hostile corpus's ``nb-binary-garbage`` notebook hung;
none with this packer). It sends the same JSON with each surrogate replaced by U+FFFD. The same config calls the
module's ``configure`` at every kernel start: the kernel joins its control thread before its exit handlers stop
the IOPub thread (ipykernel 7.4 otherwise ignored now and then a shutdown request until SIGTERM, 2.5 s later: 7 of
96 trivial notebooks run 4 at a time; none of 256 with it), and a kernel started by the harness's notebook runner
(``HARNESS_BATCH_KERNEL=1``, removed from the team's environment) runs without ipykernel's debugger, whose import
of debugpy cost about 60 ms of CPU at every start (the team can still import debugpy).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path

from harness.spec import ImageSpec

__all__ = [
    "ALWAYS_PACKAGES",
    "DATA_SCIENCE_STACK",
    "KERNEL_CONFIG_SOURCE",
    "KERNEL_SESSION_MODULE",
    "KERNEL_SESSION_SOURCE",
    "NOOP_HARNESS_NOTE",
    "NOOP_HARNESS_SOURCE",
    "STACKS",
    "image_packages",
    "project_name",
    "sandbox_support_digest",
    "task_packages",
    "write_kernel_config",
    "write_kernel_session",
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

#: Module (top level of ``site-packages``) holding the kernel's message packer; a name no team file will have.
KERNEL_SESSION_MODULE = "harness_kernel_session"

#: Source of :data:`KERNEL_SESSION_MODULE`: jupyter_client's JSON packer, safe for any text a team prints.
KERNEL_SESSION_SOURCE = '''"""The sandbox kernel's message packer (installed by the hackathon harness, harness.stack).

jupyter_client's json_packer encodes with ``surrogateescape`` and raises on a lone surrogate such as "\\ud800";
raised in the kernel's IOPub thread, that loses the output and now and then the messages queued behind it, so the
notebook's runner waits for a finished cell until the time limit. This packer sends the same JSON, with every
surrogate (U+D800 to U+DFFF) replaced by U+FFFD, and never raises on text.
"""

import codecs
import json
import re

from jupyter_client import jsonutil

__all__ = ["configure", "pack"]

_SURROGATE = re.compile("[\\ud800-\\udfff]")
# what json_packer uses in the jupyter_client installed: json_default since 7.0 (date_default before); json_clean,
# its second try on NaN and odd types, since 7.x (a task may pin an older jupyter_client: its packer had none)
_DEFAULT = getattr(jsonutil, "json_default", None) or jsonutil.date_default
_CLEAN = getattr(jsonutil, "json_clean", None)
_ERRORS = "harness_kernel_session.replace"


def _replace(exc):
    """UTF-8 encoding error handler: the text from the first surrogate on, up to 64 Ki characters, U+FFFD for each.

    Chunks keep memory near that of the output (a substitution over the whole text of a 10 MB binary dump, with
    millions of surrogates, took five times as much: enough to reach a small memory limit).
    """
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    end = max(exc.end, min(len(exc.object), exc.start + 65536))
    return _SURROGATE.sub("\\ufffd", exc.object[exc.start : end]).encode("utf-8"), end


codecs.register_error(_ERRORS, _replace)


def _control_thread_ends_first():
    """Patch ipykernel's ``IPKernelApp.start`` (6.x and 7.x): when the kernel's main loop ends, stop and join the
    control thread before the interpreter's exit handlers run.

    Those handlers stop the IOPub thread first (registered last) and then join the control thread, which, having
    answered the shutdown request, may still be flushing ``sys.stdout`` through that IOPub thread: it then waits
    for a flush that will never run (up to ``flush_timeout``, 10 s), so the kernel ignores its shutdown until the
    client's SIGTERM 2.5 s later (measured with ipykernel 7.4.0: 7 of 96 trivial notebooks run 4 at a time,
    3.2 to 3.5 s each). Joined here, while the IOPub thread still runs, the flush goes through.
    """
    import contextlib

    try:
        from ipykernel.kernelapp import IPKernelApp
    except ImportError:
        return
    original = getattr(IPKernelApp, "start", None)
    if original is None or getattr(original, "harness_patched", False):
        return

    def start(self):
        try:
            return original(self)
        finally:
            control = getattr(self, "control_thread", None)
            if control is not None and control.is_alive():
                with contextlib.suppress(Exception):
                    control.stop()
                control.join(5)

    start.harness_patched = True
    start.__doc__ = original.__doc__
    IPKernelApp.start = start


_DEBUGGER_MODULES = ("debugpy", "_pydevd_bundle", "_pydev_bundle", "pydevd")


def _import_debugger_without_debugpy():
    """Import ``ipykernel.debugger`` now, with debugpy's packages marked absent (``None`` in ``sys.modules``), so
    that it records ``_is_debugpy_available = False`` and the kernel starts without a debugger; then unmark them.

    Nothing of the harness stays in the import machinery: the team's code imports debugpy as usual and finds the
    ``sys.meta_path`` of any other kernel (a finder first on it, which left only when the team imported debugpy,
    stayed there for the whole run). Any error leaves the kernel as it would have been (with its debugger).
    """
    import sys

    marked = [name for name in _DEBUGGER_MODULES if name not in sys.modules]
    for name in marked:
        sys.modules[name] = None
    try:
        import ipykernel.debugger  # noqa: F401
    except Exception:
        pass
    finally:
        for name in marked:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


def configure(c):
    """Called by the kernel config at every kernel start in a sandbox environment.

    Always: :func:`_control_thread_ends_first`. For a kernel started by the harness's notebook runner
    (``HARNESS_BATCH_KERNEL=1``), which no frontend ever attaches to, also no debugger: debugpy's import costs about
    60 ms of CPU at every kernel start (:func:`_import_debugger_without_debugpy`). The variable is removed from the
    kernel's environment, so the team's code does not see it.
    """
    import os
    import sys

    _control_thread_ends_first()
    if os.environ.pop("HARNESS_BATCH_KERNEL", "") == "1" and "ipykernel.debugger" not in sys.modules:
        _import_debugger_without_debugpy()


def pack(obj):
    """``obj`` as UTF-8 JSON bytes (what jupyter_client's json_packer sends for ordinary text)."""
    try:
        text = json.dumps(obj, default=_DEFAULT, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):  # as json_packer: NaN, odd types
        if _CLEAN is None:
            raise
        text = json.dumps(_CLEAN(obj), default=_DEFAULT, ensure_ascii=False, allow_nan=False)
    return text.encode("utf-8", _ERRORS)
'''

#: ``<prefix>/etc/ipython/ipython_kernel_config.py`` of every sandbox environment (IPython reads it at kernel start).
KERNEL_CONFIG_SOURCE = f"""# Written by the hackathon harness (harness.stack): messages survive any text a team prints.
c = get_config()  # noqa: F821
c.Session.packer = "{KERNEL_SESSION_MODULE}.pack"
__import__("{KERNEL_SESSION_MODULE}").configure(c)
"""

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
    """Write the stand-in ``harness`` package and :data:`KERNEL_SESSION_MODULE` into a ``site-packages`` folder.

    Returns:
        The stand-in's ``__init__.py``.
    """
    package = site_packages / "harness"
    package.mkdir(parents=True, exist_ok=True)
    init = package / "__init__.py"
    init.write_text(NOOP_HARNESS_SOURCE, encoding="utf-8")
    write_kernel_session(site_packages)
    return init


def write_kernel_session(folder: Path) -> Path:
    """Write :data:`KERNEL_SESSION_MODULE` (the kernel's packer) into ``folder`` (a ``site-packages`` or a folder put
    on ``PYTHONPATH``); returns the module's path."""
    path = folder / f"{KERNEL_SESSION_MODULE}.py"
    path.write_text(KERNEL_SESSION_SOURCE, encoding="utf-8")
    return path


def write_kernel_config(prefix: Path) -> Path:
    """Write :data:`KERNEL_CONFIG_SOURCE` as ``<prefix>/etc/ipython/ipython_kernel_config.py``; returns its path.

    ``prefix`` is the environment's ``sys.prefix`` (``/opt/venv`` in an image): IPython reads kernel config from
    ``sys.prefix/etc/ipython`` at every kernel start, whatever the team's home folder holds.
    """
    folder = prefix / "etc" / "ipython"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "ipython_kernel_config.py"
    path.write_text(KERNEL_CONFIG_SOURCE, encoding="utf-8")
    return path


def sandbox_support_digest() -> str:
    """sha256 (hex, 16 characters) of every file the harness adds to a sandbox environment beyond its packages.

    Image and environment caches key on it, so a change to the stand-in or the kernel's packer rebuilds them.
    """
    payload = "\0".join((NOOP_HARNESS_SOURCE, KERNEL_SESSION_SOURCE, KERNEL_CONFIG_SOURCE))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]
