"""The values and constants shared by the submission package: limits, the opened submission, accepted suffixes.

Nothing here reads a file; the modules that open submissions (:mod:`.plan`, :mod:`.readers`, :mod:`.unpack`) and
list them (:mod:`.entries`) build on these.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

#: One mebibyte, in bytes.
MiB = 1024 * 1024

#: File suffixes accepted as a submission (lower case), longest first, with the format each one means.
SUBMISSION_SUFFIXES: tuple[tuple[str, str], ...] = (
    (".tar.gz", "tar"),
    (".ipynb", "notebook"),
    (".tgz", "tar"),
    (".tar", "tar"),
    (".zip", "zip"),
)

#: Optional file at the top of a submission naming its team (``team: NAME``); excluded from the content hash.
TEAM_FILE = "team.yaml"


#: The accepted formats, as told to a team whose submission has another one.
FORMATS_TEXT = "a folder, .zip, .tar.gz, .tgz, .tar or .ipynb"
#: Folders dropped from a submission wherever they are (and skipped in a folder of submissions).
JUNK_DIRS = frozenset({"__MACOSX", ".ipynb_checkpoints", "__pycache__"})


#: What a submission is run as.
Kind = Literal["notebook", "script"]


@dataclass(frozen=True)
class OpenLimits:
    """Caps applied while opening a submission (defaults suit a hackathon; tests pass small ones).

    Attributes:
        max_archive_bytes: largest archive (or lone notebook) file accepted, checked before it is opened, in bytes.
        max_total_bytes: largest total size of the unpacked files, in bytes.
        max_files: most regular files in the unpacked submission.
        max_entries: most archive entries of any kind (files, folders, links, dropped junk): bounds the work.
        max_ratio: largest compression ratio (unpacked bytes / compressed bytes) of one zip member, or of a whole
            tar archive.
        ratio_floor_bytes: files of at most this many unpacked bytes are exempt from ``max_ratio``, in bytes.
    """

    max_archive_bytes: int = 500 * MiB
    max_total_bytes: int = 200 * MiB
    max_files: int = 10_000
    max_entries: int = 50_000
    max_ratio: float = 100.0
    ratio_floor_bytes: int = 1 * MiB

    def __post_init__(self) -> None:
        for name in ("max_archive_bytes", "max_total_bytes", "max_files", "max_entries", "max_ratio"):
            if getattr(self, name) <= 0:
                raise ValueError(f"OpenLimits.{name} must be positive, got {getattr(self, name)!r}")
        if self.ratio_floor_bytes < 0:
            raise ValueError(f"OpenLimits.ratio_floor_bytes must be >= 0, got {self.ratio_floor_bytes!r}")


#: The limits :func:`open_submission` applies when none are given.
DEFAULT_LIMITS = OpenLimits()


@dataclass(frozen=True)
class OpenedSubmission:
    """A submission unpacked and normalised into its work folder.

    Attributes:
        root: the work folder holding the normalised submission (the ``dest`` given to :func:`open_submission`).
        kind: ``"notebook"`` or ``"script"``.
        entry: the entry point relative to ``root``, POSIX separators (``"solution.ipynb"``, ``"main.py"``).
        content_hash: sha256 hex digest of the normalised content (see :mod:`harness.submission` for its definition).
        team: the team name from ``team.yaml``, or ``None`` when the submission has no such file.
        n_files: regular files in ``root`` (``team.yaml`` included).
        n_bytes: their total size as unpacked, in bytes (before any notebook upgrade).
        notes: non-fatal remarks for the team and the judges, e.g. ``"upgraded nbformat 3.0 to 4.5"``.
        notebook_kernel: the kernel name the entry notebook declares (``None`` for scripts or when it declares
            none); the harness executes notebooks with the task's kernel regardless.
    """

    root: Path
    kind: Kind
    entry: str
    content_hash: str
    team: str | None
    n_files: int
    n_bytes: int
    notes: tuple[str, ...] = ()
    notebook_kernel: str | None = None


def split_suffix(name: str) -> tuple[str, str | None]:
    """Split an entry's name into its stem and the format its suffix means (any case); ``(name, None)`` if none.

    ``"Team-A.TAR.GZ"`` -> ``("Team-A", "tar")``; a name that is only a suffix (``".zip"``) has no format.
    """
    lower = name.lower()
    for suffix, fmt in SUBMISSION_SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], fmt
    return name, None


def size_text(n_bytes: int) -> str:
    """A size for messages: ``"12.3 MiB"`` from one MiB up, else ``"4,096 bytes"``."""
    return f"{n_bytes / MiB:,.1f} MiB" if n_bytes >= MiB else f"{n_bytes:,} bytes"


def short(exc: object, limit: int = 300) -> str:
    """An exception (or any text) on one line of at most ``limit`` characters, for a message a team reads."""
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
