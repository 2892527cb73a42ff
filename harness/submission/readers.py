"""The four submission readers (folder, zip, tar, lone notebook) and the table that names them.

A reader walks one kind of source and adds each entry to a :class:`~harness.submission.plan.Plan` (names, types,
declared sizes: metadata only), then stays open while :mod:`.unpack` writes the planned files, because the files'
openers read from the open archive. Each reader refuses what its format can hide: encrypted zip members, zip
entry counts past the cap (read from the end record before the member list is loaded), tar streams whose
decompressed length runs past the caps, links leaving the submission and special files.

:data:`READERS` is the one table from format name to :class:`Reader`; nothing registers itself at import.
"""

from __future__ import annotations

import gzip
import os
import stat
import tarfile
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import IO, NoReturn, cast

from harness.errors import SubmissionError
from harness.submission.model import MiB, OpenLimits, short
from harness.submission.plan import (
    READ_ERRORS,
    Plan,
    PlannedFile,
    check_utf8,
    link_out_message,
    reading,
    special_message,
    too_big_message,
)

__all__ = ["READERS", "Reader"]

_MAX_LINK_TARGET_BYTES = 4096
_TAR_BYTES_PER_ENTRY = 4096  # headers, pax records and padding a tar stream may spend per entry
_TAR_BROKEN = "not a valid tar archive (plain or gzip-compressed)"


# -- walking each format ----------------------------------------------------------------------------------------


def _plan_folder(plan: Plan, root: Path) -> None:
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
                    PlannedFile(parts, st.st_size, label, bool(st.st_mode & 0o100), opener=_folder_opener(path, plan))
                )
            else:
                plan.fail(special_message(label, member=False))


def _folder_opener(path: Path, plan: Plan) -> Callable[[], IO[bytes]]:
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


def _plan_zip(plan: Plan, zf: zipfile.ZipFile) -> None:
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
            with reading(plan.source, plan.broken), zf.open(info) as handle:
                linkname = handle.read(_MAX_LINK_TARGET_BYTES + 1).decode("utf-8", "surrogateescape")
            plan.add_link(parts, linkname.replace("\\", "/"), label, hard=False)
        elif file_type == stat.S_IFDIR or is_dir or (info.external_attr & 0x10 and info.file_size == 0):
            plan.add_dir(parts)
        elif file_type in (0, stat.S_IFREG):
            opener = cast(Callable[[], IO[bytes]], lambda info=info: zf.open(info))
            item = PlannedFile(parts, info.file_size, label, bool(mode & 0o100), opener=opener)
            plan.add_file(item, compressed_size=info.compress_size)
        else:
            plan.fail(special_message(label))


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
        raise SubmissionError(too_big_message(0, limits) + " (the tar stream is too long)", str(source))

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
            raise SubmissionError(f"{_TAR_BROKEN}: {short(exc)}", str(source)) from None
        except READ_ERRORS as exc:
            raise SubmissionError(f"{_TAR_BROKEN}: {short(exc)}", str(source)) from None
        with tf:
            yield tf
    finally:
        raw.close()


def _plan_tar(plan: Plan, tf: tarfile.TarFile, dest: Path, archive_bytes: int) -> None:
    while True:
        with reading(plan.source, plan.broken):
            member = tf.next()
        if member is None:
            break
        plan.count_entry()
        parts = plan.parts(member.name, member.name)
        label = "/".join(parts) or member.name
        try:  # the stdlib's 'data' filter first (same refusals), then our stricter rules
            tarfile.data_filter(member, str(dest))
        except (tarfile.AbsoluteLinkError, tarfile.LinkOutsideDestinationError):
            plan.fail(link_out_message(label, member.linkname))
        except tarfile.SpecialFileError:
            plan.fail(special_message(label))
        except tarfile.FilterError as exc:
            plan.fail(f"archive member {label!r} is refused: {exc}")
        if member.issym() or member.islnk():
            linkname = member.linkname
            check_utf8(linkname, plan.fail)
            plan.add_link(parts, linkname, label, hard=member.islnk())
        elif member.isdir():
            plan.add_dir(parts)
        elif member.isreg():
            opener = cast(Callable[[], IO[bytes]], lambda member=member: tf.extractfile(member))
            plan.add_file(PlannedFile(parts, member.size, label, bool(member.mode & 0o100), opener=opener))
        else:
            plan.fail(special_message(label))
    limits = plan.limits
    if plan.declared_bytes > limits.ratio_floor_bytes and plan.declared_bytes > limits.max_ratio * archive_bytes:
        plan.fail(
            f"the archive expands {plan.declared_bytes / archive_bytes:,.0f}x (from {archive_bytes:,} to "
            f"{plan.declared_bytes:,} bytes), more than the allowed {limits.max_ratio:g}x; this looks like an "
            "archive bomb. If it is real data, leave it out"
        )


# -- the readers and their table ------------------------------------------------------------------------------


@contextmanager
def _read_folder(plan: Plan, dest: Path, archive_bytes: int) -> Iterator[None]:
    with reading(plan.source, plan.broken):
        _plan_folder(plan, plan.source)
    yield


@contextmanager
def _read_notebook(plan: Plan, dest: Path, archive_bytes: int) -> Iterator[None]:
    source = plan.source
    plan.count_entry()
    parts = plan.parts(source.name, source.name)
    plan.add_file(PlannedFile(parts, archive_bytes, source.name, False, opener=lambda: source.open("rb")))
    yield


@contextmanager
def _read_zip(plan: Plan, dest: Path, archive_bytes: int) -> Iterator[None]:
    source, limits = plan.source, plan.limits
    declared = _zip_entry_count(source)
    if declared is not None and declared > limits.max_entries:
        plan.fail(
            f"the archive declares {declared:,} entries, more than the limit of {limits.max_entries:,}; "
            "leave out generated files, environments and caches"
        )
    with reading(source, plan.broken):
        zf = zipfile.ZipFile(source)
    with zf:
        _plan_zip(plan, zf)
        yield


@contextmanager
def _read_tar(plan: Plan, dest: Path, archive_bytes: int) -> Iterator[None]:
    with _open_tar(plan.source, plan.limits) as tf:
        _plan_tar(plan, tf, dest, archive_bytes)
        yield


@dataclass(frozen=True)
class Reader:
    """How one submission format is read into a plan.

    Attributes:
        fmt: the format's name, as :data:`~harness.submission.model.SUBMISSION_SUFFIXES` gives it.
        broken: what a read error of such a source means; the start of the team's message.
        from_file: the source is one file, whose size is checked against ``max_archive_bytes`` (and for being
            empty) before it is read.
        read: ``read(plan, dest, archive_bytes)``, a context manager that adds every entry of ``plan.source`` to
            ``plan`` on entering and keeps the source open until it exits, while the caller writes the planned
            files. ``dest`` is the work folder (tar links are checked against it), ``archive_bytes`` the source
            file's size in bytes (0 for a folder). Raises :class:`~harness.errors.SubmissionError` for a source
            that is unsafe, too large or broken.
    """

    fmt: str
    broken: str
    from_file: bool
    read: Callable[[Plan, Path, int], AbstractContextManager[None]]


#: Format name -> its reader: the one place a format is known.
READERS: Mapping[str, Reader] = MappingProxyType(
    {
        reader.fmt: reader
        for reader in (
            Reader("folder", "cannot read the submission folder", False, _read_folder),
            Reader("zip", "not a valid zip archive", True, _read_zip),
            Reader("tar", _TAR_BROKEN, True, _read_tar),
            Reader("notebook", "cannot read the notebook file", True, _read_notebook),
        )
    }
)
