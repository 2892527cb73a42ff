"""The plan of a submission: what it holds, checked entry by entry before a single byte is written.

A reader (:mod:`.readers`) walks its source and adds every entry to a :class:`Plan`, which refuses unsafe names
(absolute, ``..``, control characters, overlong, not UTF-8), links leaving the submission, special files,
duplicates and too many entries, files or declared bytes, and drops junk (``__MACOSX/``, ``.DS_Store``...).
:meth:`Plan.finish` then checks the whole (empty, file/folder clashes, links) and finds the enclosing folders to
strip. The messages for refusals shared with the readers and the writer live here too.
"""

from __future__ import annotations

import lzma
import posixpath
import re
import tarfile
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NoReturn

from harness.errors import SubmissionError
from harness.submission.model import JUNK_DIRS, OpenLimits, short, size_text

_MAX_COMPONENT_BYTES = 255
_MAX_PATH_BYTES = 1024
_BAD_CHARS = re.compile(r"[\x00-\x1f\x7f]")
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass
class PlannedFile:
    """A regular file to write: its path parts, declared size and how to read its bytes."""

    parts: tuple[str, ...]
    size: int
    label: str
    executable: bool
    opener: Callable[[], IO[bytes]] | None = None
    copy_of: tuple[str, ...] | None = None  # a hard link stored as a copy of this (earlier) file


@dataclass
class _Link:
    parts: tuple[str, ...]
    target: tuple[str, ...] | None  # relative to the archive's root; None when it leaves the archive
    label: str
    linkname: str


@dataclass
class Plan:
    """What a submission holds, checked as each entry is added (see the module docstring).

    Attributes:
        source: the submission as sent (named in errors).
        limits: the caps to apply.
        broken: what a read error of this source means, e.g. ``"not a valid zip archive"``.
        files: the regular files to write, by path parts, in the order they were added.
        dirs: the folders (kept so that empty ones are written too).
        links: the links found (never written; checked by :meth:`finish`).
        junk: dropped entries, counted per kind.
        n_entries: entries seen so far, of any kind.
        declared_bytes: the sum of the files' declared sizes, in bytes.
    """

    source: Path
    limits: OpenLimits
    broken: str
    files: dict[tuple[str, ...], PlannedFile] = field(default_factory=dict)
    dirs: set[tuple[str, ...]] = field(default_factory=set)
    links: list[_Link] = field(default_factory=list)
    junk: Counter[str] = field(default_factory=Counter)
    n_entries: int = 0
    declared_bytes: int = 0

    def fail(self, message: str) -> NoReturn:
        raise SubmissionError(message, str(self.source))

    def count_entry(self) -> None:
        self.n_entries += 1
        if self.n_entries > self.limits.max_entries:
            self.fail(
                f"the submission holds more than {self.limits.max_entries:,} entries (files, folders, links); "
                "leave out generated files, environments and caches"
            )

    def parts(self, name: str, label: str, *, backslash_is_separator: bool = False) -> tuple[str, ...]:
        """Check one member name and split it into path parts (``.`` and empty parts removed)."""
        check_utf8(name, self.fail)
        if backslash_is_separator:
            name = name.replace("\\", "/")
        if name.startswith("/") or _DRIVE.match(name):
            self.fail(
                f"archive member {label!r} has an absolute path; an archive must hold relative paths only "
                "(create it from inside your project folder, e.g. `cd project && zip -r ../team.zip .`)"
            )
        parts = tuple(part for part in name.split("/") if part not in ("", "."))
        if ".." in parts:
            self.fail(
                f"archive member {label!r} contains '..' and would be written outside the submission folder; "
                "re-create the archive from inside your project folder"
            )
        for part in parts:
            if _BAD_CHARS.search(part):
                self.fail(f"file name {label!r} contains a control character; rename the file")
            if len(part.encode("utf-8")) > _MAX_COMPONENT_BYTES:
                self.fail(f"file name {part[:40]!r}... is longer than {_MAX_COMPONENT_BYTES} bytes; shorten it")
        if len("/".join(parts).encode("utf-8")) > _MAX_PATH_BYTES:
            self.fail(f"path {label[:60]!r}... is longer than {_MAX_PATH_BYTES} bytes; use shallower folders")
        return parts

    def is_junk(self, parts: tuple[str, ...], *, is_file: bool = True) -> bool:
        """True (and counted) for entries to drop: junk folders and what they hold, macOS files."""
        for part in parts[:-1]:
            if part in JUNK_DIRS:
                self.junk[part + "/"] += 1
                return True
        if not parts:
            return False
        last = parts[-1]
        if last in JUNK_DIRS:
            self.junk[last + "/"] += 1
        elif is_file and last == ".DS_Store":
            self.junk[".DS_Store"] += 1
        elif is_file and last.startswith("._"):
            self.junk["._* (macOS AppleDouble)"] += 1
        else:
            return False
        return True

    def add_dir(self, parts: tuple[str, ...]) -> None:
        if parts and not self.is_junk(parts, is_file=False):
            self.dirs.add(parts)

    def add_file(self, item: PlannedFile, compressed_size: int | None = None) -> None:
        if not item.parts:
            self.fail(f"archive member {item.label!r} has no file name")
        if self.is_junk(item.parts):
            return
        if item.parts in self.files:
            self.fail(f"{'/'.join(item.parts)!r} appears twice in the archive; keep one copy")
        if item.size < 0:
            self.fail(f"archive member {item.label!r} declares a negative size; the archive is corrupt")
        limits = self.limits
        if len(self.files) + 1 > limits.max_files:
            self.fail(
                f"the submission holds more than {limits.max_files:,} files; leave out generated files, "
                "environments and data the task provides"
            )
        self.declared_bytes += item.size
        if self.declared_bytes > limits.max_total_bytes:
            self.fail(too_big_message(self.declared_bytes, limits, item.label))
        if (
            compressed_size is not None
            and item.size > limits.ratio_floor_bytes
            and item.size > limits.max_ratio * max(compressed_size, 1)
        ):
            self.fail(
                f"archive member {item.label!r} expands {item.size / max(compressed_size, 1):,.0f}x (from "
                f"{compressed_size:,} to {item.size:,} bytes), more than the allowed {limits.max_ratio:g}x; this "
                "looks like a zip bomb. If it is real data, leave it out"
            )
        self.files[item.parts] = item

    def add_link(self, parts: tuple[str, ...], linkname: str, label: str, *, hard: bool) -> None:
        if not parts or self.is_junk(parts):
            return
        target = _resolve_link(parts, linkname, hard=hard)
        if target is None:
            self.fail(link_out_message(label, linkname))
        if hard:
            original = self.files.get(target)
            if original is not None and original.copy_of is None:
                copy = PlannedFile(parts, original.size, label, original.executable, copy_of=target)
                self.add_file(copy)
                return
        self.links.append(_Link(parts, target, label, linkname))

    def finish(self) -> tuple[int, list[str]]:
        """Check the whole plan; return the number of enclosing folders to strip and the notes so far."""
        if not self.files:
            dropped = f" after dropping {', '.join(sorted(self.junk))}" if self.junk else ""
            self.fail(f"the submission is empty: it holds no files{dropped}")
        prefixes = {item[:i] for item in self.files for i in range(1, len(item))}
        clashes = sorted(prefixes & self.files.keys()) + sorted(self.dirs & self.files.keys())
        if clashes:
            self.fail(f"{'/'.join(clashes[0])!r} is both a file and a folder in the archive; keep one")
        depth = _wrapper_depth(self.files.keys(), self.dirs)
        notes = [f"dropped {label} ({count} entr{'y' if count == 1 else 'ies'})" for label, count in self.junk.items()]
        if depth:
            wrapper = "/".join(next(iter(self.files))[:depth])
            notes.append(f"stripped the enclosing folder {wrapper + '/'!r}")
        prefix = next(iter(self.files))[:depth]
        hard_copies = [item for item in self.files.values() if item.copy_of is not None]
        if hard_copies:
            notes.append(f"stored {len(hard_copies)} hard link(s) as copies, e.g. {hard_copies[0].label!r}")
        for link in self.links:
            if link.target is None or link.target[:depth] != prefix:
                self.fail(link_out_message(link.label, link.linkname))
        if self.links:
            shown = ", ".join(f"{link.label!r} -> {link.linkname!r}" for link in self.links[:3])
            more = f" and {len(self.links) - 3} more" if len(self.links) > 3 else ""
            notes.append(f"dropped {len(self.links)} link(s) (submissions hold no links): {shown}{more}")
        return depth, notes


def _resolve_link(parts: tuple[str, ...], linkname: str, *, hard: bool) -> tuple[str, ...] | None:
    """Where a link points, as path parts from the archive's root; ``None`` if it leaves the archive."""
    if not linkname or linkname.startswith("/") or _DRIVE.match(linkname):
        return None
    base = "" if hard else "/".join(parts[:-1])
    resolved = posixpath.normpath(posixpath.join("/", base, linkname))
    # normpath of an absolute path swallows leading '..', so check the unresolved walk for escapes.
    depth = len(base.split("/")) if base else 0
    for part in linkname.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return None
        elif part not in ("", "."):
            depth += 1
    return tuple(p for p in resolved.split("/") if p)


def _wrapper_depth(files: Any, dirs: set[tuple[str, ...]]) -> int:
    """How many single enclosing folders wrap everything (``a/b/main.py`` and nothing else -> 2)."""
    paths = set(files) | dirs
    depth = 0
    while True:
        below = [p for p in paths if len(p) > depth]
        heads = {p[depth] for p in below}
        if len(heads) != 1:
            return depth
        if any(len(p) == depth + 1 and p in files for p in below):
            return depth
        if not any(len(p) > depth + 1 for p in below):
            return depth
        depth += 1


def link_out_message(label: str, linkname: str) -> str:
    """The refusal of a link whose target leaves the submission."""
    return (
        f"{label!r} is a link to {linkname!r}, outside the submission folder; submissions hold no links: "
        "replace it with the file itself or remove it"
    )


def too_big_message(n_bytes: int, limits: OpenLimits, label: str = "") -> str:
    """The refusal of a submission past ``limits.max_total_bytes`` (``label``: the member it was reached at)."""
    at = f" (reached at {label!r})" if label else ""
    return (
        f"the unpacked submission is larger than {size_text(limits.max_total_bytes)}{at}; leave out data "
        "the task provides (it is mounted at input_dir), model caches and outputs"
    )


def special_message(label: str, *, member: bool = True) -> str:
    """The refusal of a device, FIFO or socket (``member``: an archive member rather than a folder's file)."""
    what = f"archive member {label!r}" if member else repr(label)
    return f"{what} is a device, FIFO, socket or other special file; a submission holds regular files and folders only"


def check_utf8(name: str, fail: Callable[[str], NoReturn]) -> None:
    """Call ``fail`` with a message a team can act on when ``name`` (surrogate-escaped) is not valid UTF-8."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        shown = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        fail(
            f"file name '{shown}' is not valid UTF-8; rename it using letters, digits, '-', '_' and '.' "
            "and send the submission again"
        )


#: Exceptions a broken archive raises while being read (zipfile, tarfile, gzip, zlib, bz2, lzma).
READ_ERRORS: tuple[type[BaseException], ...] = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    tarfile.TarError,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    OSError,
    ValueError,
    NotImplementedError,
    RuntimeError,
)


@contextmanager
def reading(source: Path, broken: str) -> Iterator[None]:
    """Turn a broken source's exception into ``SubmissionError("<broken>: <reason>")``; ours pass through."""
    try:
        yield
    except SubmissionError:
        raise
    except READ_ERRORS as exc:
        raise SubmissionError(f"{broken}: {short(exc)}", str(source)) from None
