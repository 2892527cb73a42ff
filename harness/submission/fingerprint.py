"""Entries unchanged since the last batch, recognised without unpacking or hashing them again.

A batch of a thousand entries opens each one (unpack, normalise, hash) on every call, although almost all of them
are unchanged since the last. :class:`FingerprintCache` remembers, in ``<submissions root>/.fingerprints.json``,
what opening an entry gave, keyed by the entry's path and a cheap fingerprint of it: for a file, its device, inode,
size, modification and change times (nanoseconds); for a folder, the same of the folder and of everything in it
(names included, nothing read). Any write to a file changes its change time (which no user can set back), a
replaced file has a new inode, and an added, removed or renamed file changes its folder's times.

A changed entry must never be taken as unchanged, so the cache is also keyed by how entries are opened (the task's
``submission`` section and the harness version), its content-addressed folder must still exist, and a fingerprint
is only remembered once its newest time is :data:`SETTLE_S` seconds old: file times have the kernel's clock-tick
granularity, and an entry written twice within one tick keeps its times (as git's "racily clean" index entries).
Such an entry is simply opened again next time.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import stat
import time
from pathlib import Path
from typing import Any

from harness.spec import SubmissionSpec
from harness.submission.model import OpenedSubmission
from harness.version import __version__

__all__ = ["CACHE_FILE", "SETTLE_S", "FingerprintCache", "entry_fingerprint"]

logger = logging.getLogger(__name__)

#: The cache's file, inside the folder of opened submissions.
CACHE_FILE = ".fingerprints.json"
#: A fingerprint is remembered only when the entry's newest time is at least this many seconds old.
SETTLE_S = 2.0


def entry_fingerprint(path: Path) -> tuple[str, int]:
    """A digest of an entry's metadata (nothing is read) and its newest time in nanoseconds.

    Args:
        path: a file or folder entry.

    Returns:
        ``(sha256 hex, newest mtime/ctime in ns)``.

    Raises:
        OSError: the entry cannot be examined, or it is or holds a symbolic link: what a link points at can change
            without any change to the link's own metadata, so such an entry is opened and hashed every time.
    """
    digest = hashlib.sha256()
    newest = 0

    def add(relative: str, info: os.stat_result) -> None:
        nonlocal newest
        digest.update(
            f"{relative}\0{info.st_mode}\0{info.st_dev}\0{info.st_ino}\0{info.st_size}\0{info.st_mtime_ns}\0"
            f"{info.st_ctime_ns}\n".encode("utf-8", "surrogateescape")
        )
        newest = max(newest, info.st_mtime_ns, info.st_ctime_ns)
        if stat.S_ISLNK(info.st_mode):
            raise OSError(f"{path / relative} is a symbolic link: its target's changes are not in its metadata")

    top = path.lstat()
    add(".", top)
    if path.is_dir() and not path.is_symlink():
        for folder, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(dirs) + sorted(files):
                item = os.path.join(folder, name)
                add(os.path.relpath(item, path), os.lstat(item))
    return digest.hexdigest(), newest


class FingerprintCache:
    """What opening each entry gave, for entries whose fingerprint has not changed (see the module docs).

    Args:
        submissions_root: the folder of opened submissions (one sub-folder per content hash); the cache lives there.
        submission_spec: how entries are opened (part of the cache's key).
    """

    def __init__(self, submissions_root: Path, submission_spec: SubmissionSpec) -> None:
        self.path = Path(submissions_root) / CACHE_FILE
        self.root = Path(submissions_root)
        self.key = hashlib.sha256(f"{__version__}\0{submission_spec!r}".encode()).hexdigest()
        self._old: dict[str, Any] = {}
        self._new: dict[str, Any] = {}
        self._pending: dict[str, tuple[str, int]] = {}
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if isinstance(data, dict) and data.get("key") == self.key and isinstance(data.get("entries"), dict):
                self._old = data["entries"]

    def lookup(self, path: Path) -> tuple[OpenedSubmission, dt.datetime] | None:
        """The opened submission and submission time remembered for an unchanged entry, else ``None``."""
        try:
            fingerprint = entry_fingerprint(path)
        except OSError:
            return None
        self._pending[str(path)] = fingerprint
        found = self._old.get(str(path))
        if not found or found.get("fingerprint") != fingerprint[0]:
            return None
        opened = found["opened"]
        root = self.root / opened["content_hash"]
        if not root.is_dir():
            return None
        self._new[str(path)] = found
        return (
            OpenedSubmission(
                root=root,
                kind=opened["kind"],
                entry=opened["entry"],
                content_hash=opened["content_hash"],
                team=opened["team"],
                n_files=int(opened["n_files"]),
                n_bytes=int(opened["n_bytes"]),
                notes=tuple(opened["notes"]),
                notebook_kernel=opened["notebook_kernel"],
            ),
            dt.datetime.fromisoformat(found["submitted_at"]),
        )

    def remember(self, path: Path, opened: OpenedSubmission, submitted_at: dt.datetime) -> None:
        """Remember what opening ``path`` gave (only when its fingerprint was taken by :meth:`lookup` and settled)."""
        fingerprint = self._pending.get(str(path))
        if fingerprint is None or time.time_ns() - fingerprint[1] < SETTLE_S * 1e9:
            return
        self._new[str(path)] = {
            "fingerprint": fingerprint[0],
            "submitted_at": submitted_at.isoformat(),
            "opened": {
                "kind": opened.kind,
                "entry": opened.entry,
                "content_hash": opened.content_hash,
                "team": opened.team,
                "n_files": opened.n_files,
                "n_bytes": opened.n_bytes,
                "notes": list(opened.notes),
                "notebook_kernel": opened.notebook_kernel,
            },
        }

    def save(self) -> None:
        """Write the entries seen in this batch (atomically); a failure only costs the next batch its speed."""
        tmp = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps({"key": self.key, "entries": self._new}), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as exc:
            logger.warning("could not save the entries' fingerprints to %s: %s", self.path, exc)
            with contextlib.suppress(OSError):
                tmp.unlink()
