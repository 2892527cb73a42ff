"""Folders built once and shared by later runs: cached virtual environments (the process sandbox's, prepare's).

A folder is complete when it holds the marker :data:`COMPLETE`; a file lock beside it serialises two processes
building the same folder, and an unfinished folder (a build that failed or was killed) is removed and built again.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Final

from filelock import FileLock

__all__ = ["COMPLETE", "build_once"]

#: The marker file of a complete folder; its text is what the build returned (e.g. the package list).
COMPLETE: Final = ".complete"


def build_once(dest: Path, build: Callable[[Path], str]) -> bool:
    """Make ``dest`` with ``build(dest)`` unless it is complete already.

    Args:
        dest: the folder (its parent is created; the lock is ``<parent>/<name>.lock``).
        build: fills the (absent) folder and returns the marker's text; anything it raises propagates after the
            unfinished folder is removed.

    Returns:
        True when this call built the folder, False when it was complete (possibly built by another process
        while this one waited for the lock).
    """
    if (dest / COMPLETE).is_file():
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(dest.parent / f"{dest.name}.lock")):
        if (dest / COMPLETE).is_file():
            return False
        shutil.rmtree(dest, ignore_errors=True)  # an unfinished earlier attempt
        try:
            marker = build(dest)
            (dest / COMPLETE).write_text(marker, encoding="utf-8")
        except BaseException:
            shutil.rmtree(dest, ignore_errors=True)
            raise
    return True
