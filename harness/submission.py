"""Open a team's submission safely: unpack, normalise, hash, find its entry point and check its notebook.

A submission arrives as a folder, a ``.zip``, a ``.tar.gz``/``.tgz``/``.tar`` or a lone ``.ipynb``.
:func:`open_submission` writes a normalised copy into a fresh work folder and describes it in an
:class:`OpenedSubmission`; :func:`iter_entries` lists one entry per team in a folder of submissions.

Opening happens in two passes. The first reads only metadata (names, types, declared sizes) and refuses anything
unsafe before a single byte is written; the second copies the bytes, counting them again because headers can lie.
On any error the work folder is cleaned, and the source is never modified.

Decisions (each one a rule a team can rely on):

* **Names.** Absolute paths (``/x``, ``C:/x``), ``..`` anywhere in a path, control characters, components longer
  than 255 bytes and paths longer than 1024 bytes are refused. Names that are not valid UTF-8 are *refused*, not
  renamed: the team's code refers to its files by name, so a silent rename would only move the failure to run
  time. A zip member without the UTF-8 flag whose raw bytes are valid UTF-8 (Info-ZIP, macOS) is read as UTF-8.
  In zip names a backslash is a folder separator (old Windows tools write them). Two members with the same
  path, or a path that is both a file and a folder, are refused.
* **Links.** The output never contains a link. A symbolic or hard link whose target leaves the submission folder
  (absolute, or escaping through ``..``) is refused. A symbolic link inside is dropped and listed in ``notes``;
  a tar hard link to a file of the archive is stored as a regular copy of that file (GNU tar writes every
  second name of a hard-linked file that way, so dropping it would lose files). Device files, FIFOs and
  sockets are refused.
* **Junk.** ``__MACOSX/``, ``.ipynb_checkpoints/``, ``__pycache__/`` (anywhere), ``.DS_Store`` and
  macOS AppleDouble files ``._*`` are dropped and counted in ``notes``. Then enclosing folders are stripped while
  the submission holds nothing but one folder (so ``team/team/main.py`` becomes ``main.py``).
* **Caps** (:class:`OpenLimits`): the archive file's size is checked before it is opened; total unpacked bytes,
  file count and entry count are checked on the declared sizes before writing and on the bytes actually read
  while writing. The compression ratio is checked per zip member; a tar stream has no per-member compressed
  size, so for tars the ratio is the sum of member sizes over the archive's size. Files at most
  ``ratio_floor_bytes`` big are exempt (a small file of zeros compresses well and harms no one).
* **Modes.** Files are written 0644 (0755 if the owner could execute them), folders 0755, whatever the umask:
  the sandbox reads them as another user. Times and owners are not kept.
* **Content hash.** ``sha256`` over the files of the normalised tree, in order of their relative POSIX path
  (UTF-8 bytes), each contributing ``path + b"\\0" + sha256(file bytes)``. Folders (also empty ones), modes and
  times do not count; neither does the top-level ``team.yaml``, so two teams sending byte-identical code get the
  same hash whatever their team names. The bytes hashed are the team's bytes as unpacked, *before* a notebook is
  upgraded (see below), so the hash does not depend on the harness's nbformat version.
* **Notebook entry.** The entry notebook must be valid (any failure to read it becomes
  ``not a valid notebook: <reason>``), is upgraded to the current nbformat 4 minor when older (the upgraded file,
  with deterministic cell ids ``cell-0``, ``cell-1``..., replaces the team's file in the work folder; a note
  says so), and must have exactly one code cell tagged ``parameters``. A kernel name other than the task's is a
  note, not an error: the harness always executes with the task's kernel.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import lzma
import os
import posixpath
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, NoReturn, cast

import yaml

from harness.errors import SubmissionError
from harness.notebooks import check_notebook
from harness.spec import SubmissionSpec

__all__ = [
    "DEFAULT_LIMITS",
    "SUBMISSION_SUFFIXES",
    "TEAM_FILE",
    "OpenLimits",
    "OpenedSubmission",
    "SubmissionEntry",
    "iter_entries",
    "open_submission",
]

logger = logging.getLogger(__name__)

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

_BROKEN = {
    "folder": "cannot read the submission folder",
    "notebook": "cannot read the notebook file",
    "tar": "not a valid tar archive (plain or gzip-compressed)",
    "zip": "not a valid zip archive",
}
_FORMATS_TEXT = "a folder, .zip, .tar.gz, .tgz, .tar or .ipynb"
_JUNK_DIRS = frozenset({"__MACOSX", ".ipynb_checkpoints", "__pycache__"})
_MAX_COMPONENT_BYTES = 255
_MAX_PATH_BYTES = 1024
_MAX_LINK_TARGET_BYTES = 4096
_MAX_TEAM_FILE_BYTES = 64 * 1024
_TAR_BYTES_PER_ENTRY = 4096  # headers, pax records and padding a tar stream may spend per entry
_CHUNK_BYTES = 1 * MiB
_BAD_CHARS = re.compile(r"[\x00-\x1f\x7f]")
_DRIVE = re.compile(r"^[A-Za-z]:")
_TEAM_NAME_PUNCTUATION = frozenset(" -_.")
_INTERPRETER = re.compile(r"^(python[0-9.]*|pypy[0-9.]*|bash|sh|Rscript|julia|node)$")
_INTERPRETER_OPTIONS_WITH_VALUE = frozenset({"-W", "-X", "-Q"})

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
        content_hash: sha256 hex digest of the normalised content (see the module docstring for its definition).
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


# -- public functions ----------------------------------------------------------------------------------------


def iter_entries(submissions_dir: Path) -> list[SubmissionEntry]:
    """List one entry per team in a folder of submissions, sorted by name.

    Entries are sub-folders and files ending in ``.zip``, ``.tar.gz``, ``.tgz``, ``.tar`` or ``.ipynb`` (any
    case). Hidden names (starting with ``.``) and ``__MACOSX``/``__pycache__`` are skipped; other files are
    skipped with a warning in the log. Two entries with the same default team name (``a.zip`` and ``a/``) are both
    listed, with a warning.

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
        if child.name.startswith(".") or child.name in _JUNK_DIRS:
            continue
        if child.is_dir():
            entries.append(SubmissionEntry(child, team_name_from_entry(child.name)))
            continue
        stem, fmt = _split_suffix(child.name)
        if child.is_file() and fmt is not None:
            entries.append(SubmissionEntry(child, team_name_from_entry(stem)))
        else:
            logger.warning("ignoring %s: a submission is %s", child, _FORMATS_TEXT)
    counts = Counter(entry.default_team_name for entry in entries)
    for name, count in sorted(counts.items()):
        if count > 1:
            logger.warning("%d entries in %s share the team name %r", count, folder, name)
    return entries


def open_submission(
    source: Path,
    dest: Path,
    submission_spec: SubmissionSpec,
    limits: OpenLimits = DEFAULT_LIMITS,
) -> OpenedSubmission:
    """Unpack a submission safely into ``dest``, normalise it, hash it and find its entry point.

    Args:
        source: a folder, ``.zip``, ``.tar.gz``/``.tgz``/``.tar`` or lone ``.ipynb``. Only read, never changed.
        dest: the work folder to fill: absent (it is created) or empty. Nothing is written outside it.
        submission_spec: the task's accepted kinds, entry notebook name, script command and kernel.
        limits: caps on archive size, unpacked bytes, file and entry counts and compression ratio.

    Returns:
        The :class:`OpenedSubmission` describing ``dest``.

    Raises:
        SubmissionError: the submission is unsafe (absolute or ``..`` paths, links leaving it, device files,
            names that are not UTF-8), too large (archive size, unpacked bytes, file count, compression ratio),
            broken (corrupt archive, invalid notebook, bad ``team.yaml``), empty, of an unsupported format or kind,
            has no entry point, or its entry notebook lacks exactly one cell tagged ``parameters``. The message
            says what to change; ``dest`` is left absent (or empty, if it existed).
        ValueError: ``dest`` is not an empty folder, or overlaps ``source`` (a harness bug, not the team's).
    """
    source = Path(source)
    dest = Path(dest)
    fmt = _source_format(source)
    created = _prepare_dest(source, dest)
    try:
        opened = _open_into(source, fmt, dest, submission_spec, limits)
    except BaseException as exc:
        _clean_dest(dest, created)
        if isinstance(exc, SubmissionError):
            logger.debug("refused %s: %s", source, exc.message)
        raise
    logger.info(
        "opened %s: %s submission, entry %s, %d files, %d bytes, hash %s",
        source,
        opened.kind,
        opened.entry,
        opened.n_files,
        opened.n_bytes,
        opened.content_hash[:12],
    )
    return opened


# -- the plan: what an archive holds, checked before anything is written -----------------------------------


@dataclass
class _File:
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
class _Plan:
    source: Path
    limits: OpenLimits
    broken: str  # what a read error means, e.g. "not a valid zip archive"
    files: dict[tuple[str, ...], _File] = field(default_factory=dict)
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
        _check_utf8(name, self.fail)
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
            if part in _JUNK_DIRS:
                self.junk[part + "/"] += 1
                return True
        if not parts:
            return False
        last = parts[-1]
        if last in _JUNK_DIRS:
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

    def add_file(self, item: _File, compressed_size: int | None = None) -> None:
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
            self.fail(_too_big_message(self.declared_bytes, limits, item.label))
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
            self.fail(_link_out_message(label, linkname))
        if hard:
            original = self.files.get(target)
            if original is not None and original.copy_of is None:
                copy = _File(parts, original.size, label, original.executable, copy_of=target)
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
                self.fail(_link_out_message(link.label, link.linkname))
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


def _link_out_message(label: str, linkname: str) -> str:
    return (
        f"{label!r} is a link to {linkname!r}, outside the submission folder; submissions hold no links: "
        "replace it with the file itself or remove it"
    )


def _too_big_message(n_bytes: int, limits: OpenLimits, label: str = "") -> str:
    at = f" (reached at {label!r})" if label else ""
    return (
        f"the unpacked submission is larger than {_size_text(limits.max_total_bytes)}{at}; leave out data "
        "the task provides (it is mounted at input_dir), model caches and outputs"
    )


def _special_message(label: str, *, member: bool = True) -> str:
    what = f"archive member {label!r}" if member else repr(label)
    return f"{what} is a device, FIFO, socket or other special file; a submission holds regular files and folders only"


def _size_text(n_bytes: int) -> str:
    return f"{n_bytes / MiB:,.1f} MiB" if n_bytes >= MiB else f"{n_bytes:,} bytes"


def _check_utf8(name: str, fail: Callable[[str], NoReturn]) -> None:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        shown = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        fail(
            f"file name '{shown}' is not valid UTF-8; rename it using letters, digits, '-', '_' and '.' "
            "and send the submission again"
        )


# -- reading each format --------------------------------------------------------------------------------------

# Exceptions a broken archive raises while being read (zipfile, tarfile, gzip, zlib, bz2, lzma).
_READ_ERRORS: tuple[type[BaseException], ...] = (
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
def _reading(source: Path, broken: str) -> Iterator[None]:
    """Turn a broken source's exception into ``SubmissionError("<broken>: <reason>")``; ours pass through."""
    try:
        yield
    except SubmissionError:
        raise
    except _READ_ERRORS as exc:
        raise SubmissionError(f"{broken}: {_short(exc)}", str(source)) from None


def _plan_folder(plan: _Plan, root: Path) -> None:
    """Walk a folder without following links; links are checked against the folder, specials refused."""
    stack: list[tuple[Path, tuple[str, ...]]] = [(root, ())]
    while stack:
        folder, base = stack.pop()
        with os.scandir(folder) as it:
            children = sorted(it, key=lambda e: e.name)
        for child in children:
            plan.count_entry()
            label = "/".join((*base, child.name))
            parts = plan.parts(label, label)
            st = child.stat(follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                plan.add_link(parts, os.readlink(child.path), label, hard=False)
            elif stat.S_ISDIR(st.st_mode):
                plan.add_dir(parts)
                if parts in plan.dirs:  # not junk
                    stack.append((Path(child.path), parts))
            elif stat.S_ISREG(st.st_mode):
                path = Path(child.path)
                plan.add_file(
                    _File(parts, st.st_size, label, bool(st.st_mode & 0o100), opener=_folder_opener(path, plan))
                )
            else:
                plan.fail(_special_message(label, member=False))


def _folder_opener(path: Path, plan: _Plan) -> Callable[[], IO[bytes]]:
    def opener() -> IO[bytes]:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            plan.fail(f"{path.name!r} changed into something other than a regular file while being read")
        return os.fdopen(fd, "rb")

    return opener


def _zip_entry_count(source: Path) -> int | None:
    """Entries the zip's end record declares, read before ``ZipFile`` loads them all (``None``: unknown)."""
    end_record = getattr(zipfile, "_EndRecData", None)  # private but stable since Python 2; optional here
    if end_record is None:
        return None
    try:
        with source.open("rb") as handle:
            record = end_record(handle)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return None
    return int(record[4]) if record else None


def _plan_zip(plan: _Plan, zf: zipfile.ZipFile) -> None:
    for info in zf.infolist():
        plan.count_entry()
        name = info.filename
        is_dir = name.endswith(("/", "\\"))
        if not info.flag_bits & 0x800:  # no UTF-8 flag: zipfile decoded cp437; many tools wrote UTF-8 anyway
            raw = name.encode("cp437")
            try:
                name = raw.decode("utf-8")
            except UnicodeDecodeError:
                name = raw.decode("utf-8", "surrogateescape")
        parts = plan.parts(name, name, backslash_is_separator=True)
        label = "/".join(parts) or name
        if info.flag_bits & 0x1:
            plan.fail(f"archive member {label!r} is encrypted; send the archive without a password")
        mode = info.external_attr >> 16
        file_type = stat.S_IFMT(mode)
        if file_type == stat.S_IFLNK:
            if info.file_size > _MAX_LINK_TARGET_BYTES:
                plan.fail(f"archive member {label!r} is a link with an overlong target; remove it")
            with _reading(plan.source, plan.broken), zf.open(info) as handle:
                linkname = handle.read(_MAX_LINK_TARGET_BYTES + 1).decode("utf-8", "surrogateescape")
            plan.add_link(parts, linkname.replace("\\", "/"), label, hard=False)
        elif file_type == stat.S_IFDIR or is_dir or (info.external_attr & 0x10 and info.file_size == 0):
            plan.add_dir(parts)
        elif file_type in (0, stat.S_IFREG):
            opener = cast(Callable[[], IO[bytes]], lambda info=info: zf.open(info))
            item = _File(parts, info.file_size, label, bool(mode & 0o100), opener=opener)
            plan.add_file(item, compressed_size=info.compress_size)
        else:
            plan.fail(_special_message(label))


class _CappedStream:
    """A read-only view of a (decompressed) tar stream that refuses to go past ``limit`` bytes.

    tarfile reads some headers whole (GNU long names, pax records) and seeks over member data; both are bounded
    here, so a hostile header cannot make it read or decompress without end.
    """

    def __init__(self, inner: IO[bytes], limit: int, fail: Callable[[], NoReturn]) -> None:
        self._inner = inner
        self._limit = limit
        self._fail = fail
        self.name = getattr(inner, "name", None)

    def read(self, size: int = -1) -> bytes:
        room = self._limit + 1 - self._inner.tell()
        if room <= 0:
            self._fail()
        data = self._inner.read(room if size is None or size < 0 else min(size, room))
        if self._inner.tell() > self._limit:
            self._fail()
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        target = offset + (self._inner.tell() if whence == os.SEEK_CUR else 0)
        if whence not in (os.SEEK_SET, os.SEEK_CUR) or target > self._limit:
            self._fail()
        return self._inner.seek(target)

    def tell(self) -> int:
        return self._inner.tell()

    def write(self, data: bytes) -> int:
        raise OSError("read-only stream")

    def close(self) -> None:
        self._inner.close()


@contextmanager
def _open_tar(source: Path, limits: OpenLimits) -> Iterator[tarfile.TarFile]:
    """Open a plain or gzip-compressed tar whose decompressed stream is capped."""

    def too_long() -> NoReturn:
        raise SubmissionError(_too_big_message(0, limits) + " (the tar stream is too long)", str(source))

    raw = source.open("rb")
    try:
        is_gzip = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        inner: IO[bytes] = cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb")) if is_gzip else raw
        limit = limits.max_total_bytes + limits.max_entries * _TAR_BYTES_PER_ENTRY + MiB
        stream = _CappedStream(inner, limit, too_long)
        try:
            tf = tarfile.open(  # noqa: SIM115 - closed by the `with tf` below
                fileobj=cast(IO[bytes], stream), mode="r:", encoding="utf-8", errors="surrogateescape"
            )
        except tarfile.ReadError as exc:
            if str(exc) == "empty file":
                raise SubmissionError("the submission is empty: the archive holds nothing", str(source)) from None
            raise SubmissionError(f"{_BROKEN['tar']}: {_short(exc)}", str(source)) from None
        except _READ_ERRORS as exc:
            raise SubmissionError(f"{_BROKEN['tar']}: {_short(exc)}", str(source)) from None
        with tf:
            yield tf
    finally:
        raw.close()


def _plan_tar(plan: _Plan, tf: tarfile.TarFile, dest: Path, archive_bytes: int) -> None:
    while True:
        with _reading(plan.source, plan.broken):
            member = tf.next()
        if member is None:
            break
        plan.count_entry()
        parts = plan.parts(member.name, member.name)
        label = "/".join(parts) or member.name
        try:  # the stdlib's 'data' filter first (same refusals), then our stricter rules
            tarfile.data_filter(member, str(dest))
        except (tarfile.AbsoluteLinkError, tarfile.LinkOutsideDestinationError):
            plan.fail(_link_out_message(label, member.linkname))
        except tarfile.SpecialFileError:
            plan.fail(_special_message(label))
        except tarfile.FilterError as exc:
            plan.fail(f"archive member {label!r} is refused: {exc}")
        if member.issym() or member.islnk():
            linkname = member.linkname
            _check_utf8(linkname, plan.fail)
            plan.add_link(parts, linkname, label, hard=member.islnk())
        elif member.isdir():
            plan.add_dir(parts)
        elif member.isreg():
            opener = cast(Callable[[], IO[bytes]], lambda member=member: tf.extractfile(member))
            plan.add_file(_File(parts, member.size, label, bool(member.mode & 0o100), opener=opener))
        else:
            plan.fail(_special_message(label))
    limits = plan.limits
    if plan.declared_bytes > limits.ratio_floor_bytes and plan.declared_bytes > limits.max_ratio * archive_bytes:
        plan.fail(
            f"the archive expands {plan.declared_bytes / archive_bytes:,.0f}x (from {archive_bytes:,} to "
            f"{plan.declared_bytes:,} bytes), more than the allowed {limits.max_ratio:g}x; this looks like an "
            "archive bomb. If it is real data, leave it out"
        )


# -- writing -----------------------------------------------------------------------------------------------


@dataclass
class _Written:
    digests: dict[str, bytes] = field(default_factory=dict)  # relative POSIX path -> sha256 of its bytes
    n_bytes: int = 0


def _write_plan(plan: _Plan, depth: int, dest: Path) -> _Written:
    """Write the planned files (and empty folders) into ``dest``, counting bytes against the caps again."""
    written = _Written()
    for parts in sorted(plan.dirs):
        if len(parts) > depth:
            _make_dirs(dest, parts[depth:])
    for item in plan.files.values():
        rel = item.parts[depth:]
        _make_dirs(dest, rel[:-1])
        target = dest.joinpath(*rel)
        mode = 0o755 if item.executable else 0o644
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), mode)
            if item.copy_of is not None:
                original = "/".join(item.copy_of[depth:])
                with (dest / original).open("rb") as src:
                    digest = _copy_capped(plan, src, out, item, written)
            else:
                assert item.opener is not None
                with _reading(plan.source, plan.broken):
                    src_handle = item.opener()
                with src_handle as src:
                    digest = _copy_capped(plan, src, out, item, written)
        written.digests["/".join(rel)] = digest
    return written


def _copy_capped(plan: _Plan, src: IO[bytes], out: IO[bytes], item: _File, written: _Written) -> bytes:
    """Copy one member's bytes, refusing more than its declared size or than the total cap."""
    digest = hashlib.sha256()
    n = 0
    while True:
        with _reading(plan.source, plan.broken):
            chunk = src.read(_CHUNK_BYTES)
        if not chunk:
            break
        n += len(chunk)
        written.n_bytes += len(chunk)
        if n > item.size:
            plan.fail(
                f"{item.label!r} holds more data than the {item.size:,} bytes declared for it (a lying archive "
                "header, or a file that changed while being read); the archive is corrupt or hostile"
            )
        if written.n_bytes > plan.limits.max_total_bytes:
            plan.fail(_too_big_message(written.n_bytes, plan.limits, item.label))
        digest.update(chunk)
        out.write(chunk)
    if n != item.size:
        plan.fail(f"{item.label!r} holds {n:,} bytes but {item.size:,} were declared; the archive is corrupt")
    return digest.digest()


def _make_dirs(dest: Path, parts: tuple[str, ...]) -> None:
    current = dest
    for part in parts:
        current = current / part
        if not current.is_dir():
            current.mkdir(mode=0o755)
            current.chmod(0o755)


def _content_hash(digests: dict[str, bytes]) -> str:
    """sha256 over ``path + b"\\0" + sha256(bytes)`` of every file but the top-level team.yaml, by path."""
    total = hashlib.sha256()
    for rel in sorted(digests, key=lambda p: p.encode("utf-8")):
        if rel == TEAM_FILE:
            continue
        total.update(rel.encode("utf-8") + b"\0" + digests[rel])
    return total.hexdigest()


# -- the whole flow ------------------------------------------------------------------------------------------


def _split_suffix(name: str) -> tuple[str, str | None]:
    lower = name.lower()
    for suffix, fmt in SUBMISSION_SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], fmt
    return name, None


def _source_format(source: Path) -> str:
    if source.is_dir():
        return "folder"
    if not source.exists():
        raise SubmissionError("the submission does not exist", str(source))
    _stem, fmt = _split_suffix(source.name)
    if fmt is None or not source.is_file():
        raise SubmissionError(f"unsupported submission format; send {_FORMATS_TEXT}", str(source))
    return fmt


def _prepare_dest(source: Path, dest: Path) -> bool:
    """Make sure ``dest`` is an empty folder; return True when this call created it."""
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        raise ValueError(f"work folder {dest} exists and is not a folder")
    resolved_dest = dest.resolve()
    resolved_source = source.resolve()
    if resolved_dest == resolved_source or resolved_source in resolved_dest.parents:
        raise ValueError(f"work folder {dest} lies inside the submission {source}; it would change the source")
    if resolved_dest in resolved_source.parents:
        raise ValueError(f"the submission {source} lies inside the work folder {dest}")
    if dest.exists():
        if any(dest.iterdir()):
            raise ValueError(f"work folder {dest} is not empty; open a submission into a fresh folder")
        return False
    dest.mkdir(parents=True)
    dest.chmod(0o755)
    return True


def _clean_dest(dest: Path, created: bool) -> None:
    if created:
        shutil.rmtree(dest, ignore_errors=True)
        return
    for child in list(dest.iterdir()) if dest.is_dir() else []:
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _open_into(source: Path, fmt: str, dest: Path, spec: SubmissionSpec, limits: OpenLimits) -> OpenedSubmission:
    plan = _Plan(source, limits, _BROKEN[fmt])
    if fmt != "folder":
        archive_bytes = source.stat().st_size
        if archive_bytes > limits.max_archive_bytes:
            plan.fail(
                f"the file is {_size_text(archive_bytes)}, more than the limit of "
                f"{_size_text(limits.max_archive_bytes)}; leave out data the task provides (it is mounted at "
                "input_dir), model caches and outputs"
            )
        if archive_bytes == 0:
            plan.fail("the submission is empty (0 bytes)")
    if fmt == "folder":
        with _reading(source, plan.broken):
            _plan_folder(plan, source)
        depth, notes = plan.finish()
        written = _write_plan(plan, depth, dest)
    elif fmt == "notebook":
        plan.count_entry()
        parts = plan.parts(source.name, source.name)
        plan.add_file(_File(parts, archive_bytes, source.name, False, opener=lambda: source.open("rb")))
        depth, notes = plan.finish()
        written = _write_plan(plan, depth, dest)
    elif fmt == "zip":
        declared = _zip_entry_count(source)
        if declared is not None and declared > limits.max_entries:
            plan.fail(
                f"the archive declares {declared:,} entries, more than the limit of {limits.max_entries:,}; "
                "leave out generated files, environments and caches"
            )
        with _reading(source, plan.broken):
            zf = zipfile.ZipFile(source)
        with zf:
            _plan_zip(plan, zf)
            depth, notes = plan.finish()
            written = _write_plan(plan, depth, dest)
    else:
        with _open_tar(source, limits) as tf:
            _plan_tar(plan, tf, dest, archive_bytes)
            depth, notes = plan.finish()
            written = _write_plan(plan, depth, dest)

    content_hash = _content_hash(written.digests)
    team, team_notes = _read_team(dest, source) if TEAM_FILE in written.digests else (None, [])
    notes.extend(team_notes)
    top_files = sorted(rel for rel in written.digests if "/" not in rel)
    top_dirs = sorted({rel.split("/", 1)[0] for rel in written.digests if "/" in rel})
    kind, entry = _detect_kind(dest, top_files, top_dirs, spec, source)
    kernel: str | None = None
    if kind == "notebook":
        kernel, notebook_notes = check_notebook(dest / entry, entry, spec.kernel, source)
        notes.extend(notebook_notes)
    return OpenedSubmission(
        root=dest,
        kind=kind,
        entry=entry,
        content_hash=content_hash,
        team=team,
        n_files=len(written.digests),
        n_bytes=written.n_bytes,
        notes=tuple(notes),
        notebook_kernel=kernel,
    )


# -- team.yaml, kind and entry -------------------------------------------------------------------------------


def team_name_from_entry(name: str) -> str:
    """A team name made from an entry's name under the rules of ``team.yaml`` names.

    Characters other than letters, digits, space, ``-``, ``_`` and ``.`` become ``_`` (control characters, ``|``,
    ``/``, a leading ``=``); the result is cut to 64 characters. A name with no letter or digit becomes ``team``
    plus a short hash, so that entries stay apart.
    """
    cleaned = "".join(c if (c.isalnum() or c in _TEAM_NAME_PUNCTUATION) else "_" for c in name).strip()[:64]
    if not any(c.isalnum() for c in cleaned):
        return "team-" + hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return cleaned


def _read_team(dest: Path, source: Path) -> tuple[str, list[str]]:
    path = dest / TEAM_FILE

    def fail(message: str) -> NoReturn:
        raise SubmissionError(f"{TEAM_FILE}: {message}", str(source))

    if path.stat().st_size > _MAX_TEAM_FILE_BYTES:
        fail(f"larger than {_MAX_TEAM_FILE_BYTES // 1024} KiB; it holds one line: `team: NAME`")
    try:
        data = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        fail("not UTF-8 text; save it as UTF-8 with one line: `team: NAME`")
    except yaml.YAMLError as exc:
        fail(f"not valid YAML ({_short(exc)}); it holds one line: `team: NAME`")
    if not isinstance(data, dict) or "team" not in data:
        fail("no `team:` key; it holds one line: `team: NAME`")
    name = data["team"]
    if not isinstance(name, str | int) or isinstance(name, bool):
        fail(f"`team:` must be a name, got {type(name).__name__}")
    name = str(name).strip()
    if not 1 <= len(name) <= 64:
        fail(f"the team name must have 1 to 64 characters, got {len(name)}")
    bad = sorted({c for c in name if not (c.isalnum() or c in _TEAM_NAME_PUNCTUATION)})
    if bad or not any(c.isalnum() for c in name):
        shown = "".join(bad) if bad else "only punctuation"
        fail(f"team name {name!r} may hold letters, digits, spaces, '-', '_' and '.' only (found {shown!r})")
    unknown = sorted(str(key) for key in data if key != "team")
    notes = [f"{TEAM_FILE}: ignored unknown key(s) {', '.join(unknown)}"] if unknown else []
    return name, notes


def _script_candidates(command: tuple[str, ...]) -> list[str]:
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


def _detect_kind(
    dest: Path, top_files: list[str], top_dirs: list[str], spec: SubmissionSpec, source: Path
) -> tuple[Kind, str]:
    notebooks = [name for name in top_files if name.lower().endswith(".ipynb")]
    notebook: str | None = None
    if (dest / spec.notebook).is_file():
        notebook = spec.notebook
    elif len(notebooks) == 1:
        notebook = notebooks[0]
    script = next((c for c in _script_candidates(spec.command) if (dest / c).is_file()), None)
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
            f"notebook {notebook!r} and no {' or '.join(_script_candidates(spec.command)) or 'script'}"
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
        scripts = " or ".join(repr(c) for c in _script_candidates(spec.command)) or "a script"
        expected.append(f"{scripts} at the top, run as `{command}`")
    listing = [*top_files, *(d + "/" for d in top_dirs)]
    shown = ", ".join(listing[:15]) + (f" and {len(listing) - 15} more" if len(listing) > 15 else "")
    several = (
        f"; it holds {len(notebooks)} notebooks, so name the one to run {spec.notebook!r}" if len(notebooks) > 1 else ""
    )
    fail(f"no entry point: this task expects {' or '.join(expected)}; found {shown}{several}")


def _short(exc: object, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
