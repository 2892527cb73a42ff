"""A run's output folder: walking it without trusting it, and the capped areas the Docker sandbox mounts.

Output trees (both sandboxes): :func:`tree_size` (polled while a command runs), :func:`sanitize_output_tree`
(links and special files removed, so the evaluator never follows a link out of the folder) and
:func:`copy_output_tree` (regular files only, within a byte budget). Both can report what they dropped as
``(relative path, kind)`` pairs (:func:`entry_kind`: ``"symbolic link"``, ``"named pipe"``, ``"socket"``,
``"device node"``), so that a team is told "predictions.csv is a symbolic link", not that it was never written.
Entries are examined with ``lstat`` only: nothing a link points at is ever read.

Output areas (Docker sandbox), where the container writes during a run:

* :class:`LoopOutput`, a hard cap when the harness runs as root: a sparse file of ``output_mb`` MiB formatted
  ext4 (no journal, no reserved blocks) is loop-mounted ``nosuid,nodev,noexec`` on the host and bind-mounted into
  the container. The team's writes fail with ENOSPC at the cap, the host disk takes at most ``output_mb`` MiB,
  and after the run the contents are copied (regular files only, within the budget) into the request's
  ``output_dir``.
* :class:`PolledOutput`, without root: the output folder is bind-mounted directly, its size is polled and the
  container killed when it passes the cap (between two polls it can overshoot).

Alternatives considered: Docker's ``--storage-opt size`` needs xfs with project quotas (not this machine's
ext4); a tmpfs output mount is capped but vanishes with the container and charges RAM; polling alone cannot
guarantee the cap.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path

from harness.errors import SandboxError
from harness.procs import pid_alive

__all__ = [
    "AREA_PREFIX",
    "NEAR_FULL_BYTES",
    "OWNER_FILE",
    "LoopOutput",
    "OutputArea",
    "PolledOutput",
    "copy_output_tree",
    "entry_kind",
    "remove_orphan_areas",
    "sanitize_output_tree",
    "tree_size",
]

logger = logging.getLogger(__name__)

#: An output file system with less free space than this (or a quarter of it, for tiny caps) counts as full.
NEAR_FULL_BYTES = 2 * 1024 * 1024
#: Name prefix of each loop-mounted area's scratch folder (followed by the session id, see
#: :func:`harness.sandbox.docker.session_id`).
AREA_PREFIX = "harness-output-"
#: File in each output area's scratch folder naming the host and pid of the harness process that made it.
OWNER_FILE = "owner"


# --- output trees ---------------------------------------------------------------------------------------------


def entry_kind(mode: int) -> str:
    """What a file system entry is, from its ``st_mode`` (of ``os.lstat``), in words a team understands.

    Returns:
        ``"regular file"``, ``"directory"``, ``"symbolic link"``, ``"named pipe"``, ``"socket"``, ``"device node"``
        (block or character device), or ``"special file"`` for anything else.
    """
    for test, kind in (
        (stat.S_ISREG, "regular file"),
        (stat.S_ISDIR, "directory"),
        (stat.S_ISLNK, "symbolic link"),
        (stat.S_ISFIFO, "named pipe"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISBLK, "device node"),
        (stat.S_ISCHR, "device node"),
    ):
        if test(mode):
            return kind
    return "special file"


def tree_size(folder: Path) -> int:
    """Bytes of everything but folders under ``folder``, by apparent size, links not followed (errors skipped)."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def sanitize_output_tree(
    folder: Path, *, strict: bool, dropped: list[tuple[str, str]] | None = None
) -> tuple[int, int]:
    """Remove links and special files (devices, FIFOs, sockets) from a run's output folder, in place.

    Each removal is logged as a warning. An entry whose kind cannot be read, or that cannot be removed, raises
    when ``strict`` (the Docker sandbox: a link left in place could lead the evaluator out of the folder) and is
    skipped otherwise (the process sandbox, which does not isolate anyway). Links are never followed.

    Args:
        folder: the output folder.
        strict: raise on an entry that cannot be examined or removed.
        dropped: when given, receives ``(path relative to folder, kind)`` (:func:`entry_kind`) of each entry
            removed, in walk order.

    Returns:
        ``(total, biggest)``: bytes of the regular files left, and of the biggest one.

    Raises:
        OSError: only when ``strict``.
    """
    total = biggest = 0
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(root, name)
            try:
                st = os.lstat(path)
            except OSError:
                if strict:
                    raise
                continue
            if stat.S_ISDIR(st.st_mode):
                continue
            if not stat.S_ISREG(st.st_mode):
                logger.warning("removing %s from the output folder: not a regular file or folder", path)
                try:
                    os.unlink(path)
                except OSError:
                    if strict:
                        raise
                    continue
                if dropped is not None:
                    dropped.append((os.path.relpath(path, folder), entry_kind(st.st_mode)))
                continue
            total += st.st_size
            biggest = max(biggest, st.st_size)
    return total, biggest


def copy_output_tree(
    source: Path, dest: Path, budget_bytes: int, *, dropped: list[tuple[str, str]] | None = None
) -> tuple[int, bool, list[str]]:
    """Copy a run's output folder to the host without trusting its content.

    Only regular files and folders are copied; symbolic links, devices, FIFOs and sockets are skipped (a link
    could point at a host file that the evaluator would then read). Files are opened with ``O_NOFOLLOW``.
    Sizes count against ``budget_bytes`` by their apparent length, so sparse files and hard links cannot
    inflate the host copy beyond the budget; a file that does not fit is dropped.

    Args:
        source: folder written by the run.
        dest: existing empty host folder that receives the copy.
        budget_bytes: most bytes copied in total.
        dropped: when given, receives ``(relative path, kind)`` (:func:`entry_kind`) of each entry skipped for
            not being a regular file or folder (not those dropped for lack of budget).

    Returns:
        ``(copied_bytes, over_budget, skipped)``: bytes written to ``dest``; whether something was dropped for
        lack of budget; relative paths of entries skipped (links, special files, over budget).
    """
    copied = 0
    over = False
    skipped: list[str] = []
    for root, dirs, files in os.walk(source, followlinks=False):
        rel_root = Path(root).relative_to(source)
        for name in list(dirs):
            src = Path(root) / name
            st = os.lstat(src)
            if not stat.S_ISDIR(st.st_mode):  # a symlink to a folder shows up in dirs
                dirs.remove(name)
                skipped.append(str(rel_root / name))
                if dropped is not None:
                    dropped.append((str(rel_root / name), entry_kind(st.st_mode)))
                continue
            (dest / rel_root / name).mkdir(exist_ok=True)
        for name in files:
            rel = rel_root / name
            src = Path(root) / name
            st = os.lstat(src)
            if not stat.S_ISREG(st.st_mode):
                skipped.append(str(rel))
                if dropped is not None:
                    dropped.append((str(rel), entry_kind(st.st_mode)))
                continue
            if copied + st.st_size > budget_bytes:
                over = True
                skipped.append(str(rel))
                continue
            copied += _copy_regular_file(src, dest / rel, budget_bytes - copied)
    if skipped:
        logger.warning(
            "output copy skipped %s entries (links, special files or over the cap): %s", len(skipped), skipped[:5]
        )
    return copied, over, skipped


def _copy_regular_file(src: Path, dst: Path, budget_bytes: int) -> int:
    fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW)
    written = 0
    try:
        with os.fdopen(fd, "rb", closefd=False) as fin, open(dst, "xb") as fout:
            while written < budget_bytes:
                chunk = fin.read(min(1 << 20, budget_bytes - written))
                if not chunk:
                    break
                fout.write(chunk)
                written += len(chunk)
    finally:
        os.close(fd)
    return written


# --- output areas ---------------------------------------------------------------------------------------------


class OutputArea:
    """Where the container writes its outputs during a run; :meth:`collect` moves them to ``output_dir``.

    Attributes:
        host_path: host folder bound writable into the container.
        enforced: whether the cap is guaranteed (``False``: polled, see :meth:`exceeded`).
    """

    host_path: Path
    enforced: bool = True

    def exceeded(self) -> bool:
        """True when the run must be stopped for writing too much (polled areas only)."""
        return False

    def hit_cap(self) -> bool:
        """True when the run filled its output space."""
        return False

    def collect(self, dest: Path, budget_bytes: int) -> tuple[int, bool, list[tuple[str, str]]]:
        """Copy the outputs into ``dest``; returns ``(bytes, over_budget, dropped)``, ``dropped`` listing the
        entries left out for not being regular files or folders as ``(relative path, kind)``."""
        raise NotImplementedError

    def close(self) -> None:
        """Release everything the area holds (mounts, files)."""


class LoopOutput(OutputArea):
    """A sparse ext4 image of exactly ``output_mb`` MiB, loop-mounted on the host (root only).

    Args:
        output_mb: size of the file system in MiB (the team's hard cap; ext4 metadata takes ~1-2% of it).
        work_dir: host folder for the image file and mount point.
        owner: ``"uid:gid"`` owning the file system's root.
        session: the harness session's id, part of the scratch folder's name (``""``: none).

    Raises:
        SandboxError: ``mkfs.ext4`` or ``mount`` failed (nothing is left behind).
    """

    def __init__(self, output_mb: int, work_dir: Path, owner: str, session: str = "") -> None:
        self._dir = Path(tempfile.mkdtemp(prefix=f"{AREA_PREFIX}{session}-", dir=work_dir))
        self._image = self._dir / "output.ext4"
        self.host_path = self._dir / "mnt"
        self._mounted = False
        try:
            # Whose area this is, so remove_orphans() can clean up after a harness killed with SIGKILL.
            (self._dir / OWNER_FILE).write_text(f"{socket.gethostname()} {os.getpid()}\n")
            self.host_path.mkdir()
            with open(self._image, "wb") as fh:
                fh.truncate(output_mb * 1024 * 1024)
            run_tool(
                [
                    "mkfs.ext4",
                    "-q",
                    "-F",
                    "-m",
                    "0",
                    "-b",
                    "4096",
                    "-i",
                    "16384",
                    "-O",
                    "^has_journal,^resize_inode",
                    "-E",
                    f"root_owner={owner}",
                    str(self._image),
                ]
            )
            run_tool(["mount", "-o", "loop,nosuid,nodev,noexec", str(self._image), str(self.host_path)])
            self._mounted = True
            shutil.rmtree(self.host_path / "lost+found", ignore_errors=True)
        except BaseException:
            self.close()
            raise

    def hit_cap(self) -> bool:
        # ext4 refuses a large write that nears the end of the space (it reserves room for metadata per
        # chunk of up to ~2 MiB), so a team that got ENOSPC can leave up to ~2 MiB free: "near-full" counts.
        st = os.statvfs(self.host_path)
        size = st.f_blocks * st.f_frsize
        threshold = max(4 * st.f_frsize, min(NEAR_FULL_BYTES, size // 4))
        return st.f_bavail * st.f_frsize < threshold or st.f_favail == 0

    def collect(self, dest: Path, budget_bytes: int) -> tuple[int, bool, list[tuple[str, str]]]:
        dropped: list[tuple[str, str]] = []
        copied, over, _ = copy_output_tree(self.host_path, dest, budget_bytes, dropped=dropped)
        return copied, over, dropped

    def close(self) -> None:
        if self._mounted:
            for attempt in range(20):
                proc = subprocess.run(["umount", str(self.host_path)], capture_output=True, text=True)
                if proc.returncode == 0:
                    self._mounted = False
                    break
                time.sleep(0.05 * (attempt + 1))
            if self._mounted:
                logger.warning("output mount %s is busy; detaching it lazily", self.host_path)
                subprocess.run(["umount", "-l", str(self.host_path)], capture_output=True)
                self._mounted = False
        shutil.rmtree(self._dir, ignore_errors=True)


class PolledOutput(OutputArea):
    """The request's own output folder, bound directly; its size is polled (no hard guarantee).

    Args:
        output_dir: the request's (empty) output folder.
        output_mb: the cap in MiB.
        owner: ``"uid:gid"`` of the team user; the folder is given to it when the harness runs as root.
    """

    enforced = False

    def __init__(self, output_dir: Path, output_mb: int, owner: str) -> None:
        self.host_path = output_dir
        self._cap = output_mb * 1024 * 1024
        self._over = False
        if os.geteuid() == 0:  # the team user must be able to write here
            uid, gid = (int(x) for x in owner.split(":"))
            os.chown(output_dir, uid, gid)

    def _size(self) -> int:
        return tree_size(self.host_path)

    def exceeded(self) -> bool:
        self._over = self._over or self._size() > self._cap
        return self._over

    def hit_cap(self) -> bool:
        return self._over or self._size() > self._cap

    def collect(self, dest: Path, budget_bytes: int) -> tuple[int, bool, list[tuple[str, str]]]:
        # The files are already in place; drop what the evaluator must not follow (links, special files).
        dropped: list[tuple[str, str]] = []
        sanitize_output_tree(self.host_path, strict=True, dropped=dropped)
        size = self._size()
        return size, size > budget_bytes, dropped


def run_tool(argv: list[str]) -> None:
    """Run a host tool (``mkfs.ext4``, ``mount``); raises :class:`SandboxError` with its stderr when it fails."""
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SandboxError(f"{argv[0]} failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")


def remove_orphan_areas(work_dir: Path | None = None) -> int:
    """Remove the loop-mounted output areas of harness processes that are gone (killed with SIGKILL).

    An area (``harness-output-*`` under ``work_dir``) counts as orphaned when its owner file names this host and
    a process that no longer exists; its mount is detached lazily and its folder removed.

    Args:
        work_dir: folder of the output areas (default: the system temp folder).

    Returns:
        The number of areas removed.
    """
    removed = 0
    host = socket.gethostname()
    for folder in Path(work_dir or tempfile.gettempdir()).glob(f"{AREA_PREFIX}*"):
        try:
            owner_host, owner_pid = (folder / OWNER_FILE).read_text().split()
        except (OSError, ValueError):
            continue
        if owner_host != host or not owner_pid.isdigit() or pid_alive(int(owner_pid)):
            continue
        mount_point = folder / "mnt"
        if os.path.ismount(mount_point):
            subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)
        logger.warning("removing output area %s left by harness process %s, which is gone", folder, owner_pid)
        shutil.rmtree(folder, ignore_errors=True)
        removed += 1
    return removed
