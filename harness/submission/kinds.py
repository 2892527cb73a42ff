"""What a submission is: a notebook or a script, and which file is its entry point.

The task's spec says which kinds it accepts, the notebook's name and the script's command; the script's entry
is read from that command (``python -u main.py`` -> ``main.py``, ``python -m pkg`` -> ``pkg.py`` or
``pkg/__main__.py``).
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import NoReturn

from harness.errors import SubmissionError
from harness.spec import SubmissionSpec
from harness.submission.model import Kind

__all__ = ["detect_kind", "script_candidates"]

_INTERPRETER = re.compile(r"^(python[0-9.]*|pypy[0-9.]*|bash|sh|Rscript|julia|node)$")
_INTERPRETER_OPTIONS_WITH_VALUE = frozenset({"-W", "-X", "-Q"})


def script_candidates(command: tuple[str, ...]) -> list[str]:
    """Files that would be the entry of a script command (``python -u main.py`` -> ``[main.py]``)."""
    args = list(command)
    i = 0
    if args and _INTERPRETER.match(posixpath.basename(args[0])):
        i = 1
        while i < len(args) and args[i].startswith("-"):
            option = args[i]
            if option == "-m" and i + 1 < len(args):
                module = args[i + 1].replace(".", "/")
                return [f"{module}.py", f"{module}/__main__.py"]
            if option == "-c":
                return []
            i += 2 if option in _INTERPRETER_OPTIONS_WITH_VALUE else 1
    if i >= len(args):
        return []
    return [posixpath.normpath(args[i])]


def detect_kind(
    dest: Path, top_files: list[str], top_dirs: list[str], spec: SubmissionSpec, source: Path
) -> tuple[Kind, str]:
    """Decide whether an opened submission runs as a notebook or a script, and find its entry.

    A notebook is the spec's ``notebook`` name, else the only ``.ipynb`` file at the top; a script is the first
    file the spec's command would run (:func:`script_candidates`). A notebook wins when the task accepts both.

    Args:
        dest: the opened submission's work folder.
        top_files: the files at the top of ``dest``, sorted.
        top_dirs: the folders at the top of ``dest``, sorted.
        spec: the task's accepted kinds, notebook name and script command.
        source: the submission as sent (named in errors).

    Returns:
        ``(kind, entry)``, the entry relative to ``dest``.

    Raises:
        SubmissionError: no entry the task accepts; the message lists what was found and what was expected.
    """
    notebooks = [name for name in top_files if name.lower().endswith(".ipynb")]
    notebook: str | None = None
    if (dest / spec.notebook).is_file():
        notebook = spec.notebook
    elif len(notebooks) == 1:
        notebook = notebooks[0]
    script = next((c for c in script_candidates(spec.command) if (dest / c).is_file()), None)
    command = " ".join(spec.command)
    if notebook is not None and "notebook" in spec.kinds:
        return "notebook", notebook
    if script is not None and "script" in spec.kinds:
        return "script", script

    def fail(message: str) -> NoReturn:
        raise SubmissionError(message, str(source))

    if notebook is not None:
        fail(
            f"this task accepts script submissions only (run as `{command}`), but the submission holds the "
            f"notebook {notebook!r} and no {' or '.join(script_candidates(spec.command)) or 'script'}"
        )
    if script is not None:
        fail(
            f"this task accepts notebook submissions only ({spec.notebook!r} or a single .ipynb file at the top), "
            f"but the submission holds {script!r} and no notebook"
        )
    expected = []
    if "notebook" in spec.kinds:
        expected.append(f"a notebook named {spec.notebook!r} (or a single .ipynb file) at the top")
    if "script" in spec.kinds:
        scripts = " or ".join(repr(c) for c in script_candidates(spec.command)) or "a script"
        expected.append(f"{scripts} at the top, run as `{command}`")
    listing = [*top_files, *(d + "/" for d in top_dirs)]
    shown = ", ".join(listing[:15]) + (f" and {len(listing) - 15} more" if len(listing) > 15 else "")
    several = (
        f"; it holds {len(notebooks)} notebooks, so name the one to run {spec.notebook!r}" if len(notebooks) > 1 else ""
    )
    fail(f"no entry point: this task expects {' or '.join(expected)}; found {shown}{several}")
