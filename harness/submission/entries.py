"""The entries of a batch folder (one per team) and what the coordinator needs of each before it runs it.

:func:`iter_entries` lists the entries (:func:`hidden_entries` the ones it skips for their leading ``.``);
:func:`open_entry` opens one into a content-addressed folder;
:func:`unopened_fingerprint` names the content of an entry that could not be opened (so a refused entry is not
tried again on each call); :func:`submitted_at` says when an entry was submitted.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import os
import shutil
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError, SubmissionError
from harness.spec import SubmissionSpec
from harness.submission.model import FORMATS_TEXT, JUNK_DIRS, OpenedSubmission, split_suffix
from harness.submission.team import team_name_from_entry
from harness.submission.unpack import open_submission

__all__ = ["SubmissionEntry", "hidden_entries", "iter_entries", "open_entry", "submitted_at", "unopened_fingerprint"]

logger = logging.getLogger(__name__)

#: Files up to this size are hashed whole by :func:`unopened_fingerprint`; larger ones by name, size and time.
_FINGERPRINT_READ_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class SubmissionEntry:
    """One team's entry in a folder of submissions.

    Attributes:
        path: the folder, archive or notebook.
        default_team_name: the entry's name without its suffix (``team-a.tar.gz`` -> ``team-a``); the team's
            name unless its ``team.yaml`` gives another.
    """

    path: Path
    default_team_name: str


def iter_entries(submissions_dir: Path) -> list[SubmissionEntry]:
    """List one entry per team in a folder of submissions, sorted by name.

    Entries are sub-folders and files ending in ``.zip``, ``.tar.gz``, ``.tgz``, ``.tar`` or ``.ipynb`` (any
    case). Hidden names (starting with ``.``; :func:`hidden_entries` lists them, for the batch summary) and
    ``__MACOSX``/``__pycache__`` are skipped; other files are skipped with a warning in the log. Two entries with
    the same default team name (``a.zip`` and ``a/``) are both listed, with a warning.

    Args:
        submissions_dir: the folder holding the entries.

    Returns:
        The entries, sorted by file name.

    Raises:
        SubmissionError: ``submissions_dir`` is not a folder.
    """
    folder = Path(submissions_dir)
    if not folder.is_dir():
        raise SubmissionError("not a folder of submissions (one entry per team)", str(folder))
    entries: list[SubmissionEntry] = []
    for child in sorted(folder.iterdir(), key=lambda p: p.name):
        if child.name.startswith(".") or child.name in JUNK_DIRS:
            continue
        if child.is_dir():
            entries.append(SubmissionEntry(child, team_name_from_entry(child.name)))
            continue
        stem, fmt = split_suffix(child.name)
        if child.is_file() and fmt is not None:
            entries.append(SubmissionEntry(child, team_name_from_entry(stem)))
        else:
            logger.warning("ignoring %s: a submission is %s", child, FORMATS_TEXT)
    counts = Counter(entry.default_team_name for entry in entries)
    for name, count in sorted(counts.items()):
        if count > 1:
            logger.warning("%d entries in %s share the team name %r", count, folder, name)
    return entries


def hidden_entries(submissions_dir: Path) -> list[str]:
    """The names in a folder of submissions that :func:`iter_entries` skips because they start with ``.``.

    Args:
        submissions_dir: the folder holding the entries.

    Returns:
        The names, sorted; ``[]`` when the folder cannot be listed.
    """
    try:
        return sorted(child.name for child in Path(submissions_dir).iterdir() if child.name.startswith("."))
    except OSError:
        return []


def open_entry(
    entry: SubmissionEntry, submissions_root: Path, submission_spec: SubmissionSpec
) -> tuple[OpenedSubmission | None, str]:
    """Open an entry into the content-addressed folder ``submissions_root/<content hash>``.

    The entry is unpacked into a fresh ``.incoming-<uuid>`` folder under ``submissions_root``, then renamed to its
    content hash; when that folder already exists (same content seen before) the new copy is removed.

    Args:
        entry: the entry to open.
        submissions_root: the folder holding opened submissions, one sub-folder per content hash.
        submission_spec: the task's accepted kinds, entry notebook name, script command and kernel.

    Returns:
        ``(opened, "")`` with ``opened.root`` the content-addressed folder, or ``(None, reason)`` when the
        submission was refused (the :class:`~harness.errors.SubmissionError` message, for the team).

    Raises:
        HarnessError: writing into ``submissions_root`` failed (a full disk, permissions): the harness's
            trouble, not the team's.
    """
    incoming = submissions_root / f".incoming-{uuid.uuid4().hex}"
    try:
        opened = open_submission(entry.path, incoming, submission_spec)
    except SubmissionError as exc:
        shutil.rmtree(incoming, ignore_errors=True)
        return None, exc.message
    except OSError as exc:  # writing into the work folder failed (a team's unreadable file is a SubmissionError)
        shutil.rmtree(incoming, ignore_errors=True)
        raise HarnessError(
            f"cannot unpack {entry.path.name} into the work folder {submissions_root}: {exc.strerror or exc}; "
            "make room there (or choose another --home) and run the same command again"
        ) from exc
    final = submissions_root / opened.content_hash
    if final.exists():
        shutil.rmtree(incoming, ignore_errors=True)
    else:
        os.replace(incoming, final)
    return dataclasses.replace(opened, root=final), ""


def unopened_fingerprint(path: Path) -> str:
    """A content hash for an entry that could not be opened, so a refused entry is not tried again each call.

    It is not an :attr:`OpenedSubmission.content_hash` (nothing was unpacked) and is kept apart from those: the
    sha256 starts from ``b"unopened\\0"``. A folder contributes the relative path and size of each regular file (links
    skipped), in sorted order; a file up to 64 MiB its bytes; a larger file its name, size and modification time.

    Args:
        path: the entry (folder, archive or notebook); a missing path gives the hash of nothing.

    Returns:
        A sha256 hex digest (64 characters).

    Raises:
        OSError: a file cannot be read.
    """
    digest = hashlib.sha256(b"unopened\0")
    if path.is_dir():
        for item in sorted(path.rglob("*")):
            if item.is_file() and not item.is_symlink():
                digest.update(item.relative_to(path).as_posix().encode("utf-8", "surrogateescape"))
                digest.update(str(item.stat().st_size).encode())
    elif path.is_file():
        size = path.stat().st_size
        if size <= _FINGERPRINT_READ_BYTES:
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        else:
            digest.update(f"{path.name}:{size}:{path.stat().st_mtime_ns}".encode())
    return digest.hexdigest()


def submitted_at(path: Path) -> dt.datetime:
    """When an entry was submitted: the newest modification time of the entry or of any regular file in it.

    An edit inside a folder does not touch the folder's own time, so a folder's time is the newest of its files
    (links skipped). When the entry cannot be read (it vanished), the current time is used.

    Args:
        path: the entry (folder, archive or notebook).

    Returns:
        A timezone-aware UTC datetime.
    """
    try:
        newest = path.stat().st_mtime
        if path.is_dir():
            for item in path.rglob("*"):
                if item.is_file() and not item.is_symlink():
                    newest = max(newest, item.stat().st_mtime)
        return dt.datetime.fromtimestamp(newest, dt.UTC)
    except OSError:
        return dt.datetime.now(dt.UTC)
