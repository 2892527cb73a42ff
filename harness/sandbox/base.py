"""The sandbox contract: what a run asks for and what it gets back, plus helpers both implementations share.

A :class:`Sandbox` runs one command from one image with mounts and limits, and returns a :class:`RunResult`.
Implementations: ``docker`` (production, isolating) and ``process`` (a local subprocess for team laptops
without Docker; it does NOT isolate). Both take the same :class:`RunRequest`.

Shared helpers (used by :mod:`harness.sandbox.docker` and :mod:`harness.sandbox.process`, not part of the
public API): :class:`LogCollector` keeps a bounded log while a run prints without bound, and
:func:`copy_output_tree` copies a run's output folder without following links and within a byte budget.
"""

from __future__ import annotations

import collections
import contextlib
import enum
import logging
import os
import signal
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "LOG_TRUNCATED_MARKER",
    "Limits",
    "LogCollector",
    "Mount",
    "RunOutcome",
    "RunRequest",
    "RunResult",
    "Sandbox",
    "copy_output_tree",
    "deferred_signals",
    "sigterm_unwinds",
    "validate_request",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed run (defaults are the task spec's defaults).

    Attributes:
        time_s: wall-clock limit in seconds, enforced from outside (the container is killed on expiry).
        memory_mb: memory limit in MiB (RAM; swap is not granted).
        cpus: CPU share (1.0 = one core).
        pids: maximum number of processes/threads in the sandbox (fork bombs stop here).
        output_mb: maximum total bytes, in MiB, the run may write to its output folder.
        log_kb: maximum bytes, in KiB, of stdout+stderr kept; the rest is dropped and a marker appended.
    """

    time_s: float = 600.0
    memory_mb: int = 2048
    cpus: float = 1.0
    pids: int = 256
    output_mb: int = 64
    log_kb: int = 256


@dataclass(frozen=True)
class Mount:
    """A host folder made visible in the sandbox.

    Attributes:
        source: absolute host path (must exist).
        target: absolute path inside the sandbox, e.g. ``/submission``.
        read_only: mount read-only (everything but the output folder is).
    """

    source: Path
    target: str
    read_only: bool = True


@dataclass(frozen=True)
class RunRequest:
    """One command to run in a sandbox.

    Attributes:
        image: image reference (name:tag or id). It must exist locally; it is never pulled.
        command: argv list, run by the image's Python environment (e.g. ``["python", "main.py"]``).
        mounts: read-only mounts (submission, input data). Never the hidden reference or the store.
        output_dir: host folder that receives the run's outputs; mounted writable at ``output_target``,
            capped at ``limits.output_mb``. It must exist and be empty.
        limits: resource limits.
        workdir: working directory inside the sandbox.
        env: extra environment variables (no secrets: teams' code reads them).
        output_target: where ``output_dir`` appears inside the sandbox.
        label: free text for logs and container labels (e.g. ``"team-a/3f2c1d"``).
    """

    image: str
    command: tuple[str, ...]
    output_dir: Path
    mounts: tuple[Mount, ...] = ()
    limits: Limits = field(default_factory=Limits)
    workdir: str = "/submission"
    env: tuple[tuple[str, str], ...] = ()
    output_target: str = "/output"
    label: str = ""


class RunOutcome(enum.StrEnum):
    """How a sandboxed command ended (the pipeline maps these to run statuses; ``str()`` gives the value)."""

    EXITED = "exited"  # the command ended by itself; see exit_code
    TIMED_OUT = "timed_out"  # killed from outside at limits.time_s
    OUT_OF_MEMORY = "out_of_memory"  # killed by the kernel's OOM killer at limits.memory_mb
    OUTPUT_LIMIT = "output_limit"  # wrote more than limits.output_mb to the output folder


@dataclass(frozen=True)
class RunResult:
    """What a sandboxed run did.

    Attributes:
        outcome: how it ended (see :class:`RunOutcome`).
        exit_code: the command's exit code (``None`` when killed before it could exit).
        duration_s: wall-clock seconds from start to end of the command.
        peak_memory_mb: peak memory use in MiB as the sandbox measured it (``None`` if unknown).
        log: stdout and stderr interleaved, decoded as UTF-8 with replacement, at most ``limits.log_kb``
            KiB; when cut, it ends with :data:`LOG_TRUNCATED_MARKER` and the count of bytes dropped.
        log_truncated: whether the log was cut.
        output_bytes: bytes in the output folder after the run.
        image_id: the id (sha256) of the image that ran, for provenance (``""`` for ``process``).
        sandbox: the implementation's name (``"docker"`` or ``"process"``).
        log_tail: when the log was cut, the last bytes of the dropped part (at most
            :data:`LOG_TAIL_BYTES`, decoded like ``log``): the end of the output, where a traceback usually
            is. ``""`` when nothing was cut.
        isolated: ``False`` when the sandbox did not isolate the command (``process``): the team's code ran
            with the harness's own rights.
        warnings: notes about the run a judge should see (e.g. ``"output size was polled, not enforced"``).
    """

    outcome: RunOutcome
    exit_code: int | None
    duration_s: float
    peak_memory_mb: float | None
    log: str
    log_truncated: bool
    output_bytes: int = 0
    image_id: str = ""
    sandbox: str = ""
    log_tail: str = ""
    isolated: bool = True
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when the command exited by itself with code 0."""
        return self.outcome is RunOutcome.EXITED and self.exit_code == 0


#: Appended to a log that was cut at its cap: ``"\n[harness: log truncated at 256 KiB; 104857600 bytes dropped]\n"``.
LOG_TRUNCATED_MARKER = "[harness: log truncated"

#: Bytes of the end of a cut log kept in :attr:`RunResult.log_tail`.
LOG_TAIL_BYTES = 4096

# Room kept free under the cap for the marker, so that log + marker never exceed ``log_kb`` KiB.
_MARKER_RESERVE = 128


@runtime_checkable
class Sandbox(Protocol):
    """Runs one :class:`RunRequest` and always cleans up after it (container/process removed, even on Ctrl-C).

    Raises (from ``run``):
        EngineUnavailableError: no engine to run in (docker only).
        ImageError: the image does not exist locally.
        SandboxError: the sandbox itself failed (not the team's code).
    """

    name: str

    def run(self, request: RunRequest) -> RunResult:
        """Run the request to completion and return what happened."""
        ...


# --- helpers shared by the implementations ---------------------------------------------------------------


def validate_request(request: RunRequest) -> None:
    """Check a request's paths and limits before anything is started.

    Raises:
        SandboxError: the command is empty, a mount source or the output folder does not exist, the output
            folder is not empty, a path is not absolute, or a limit is not positive.
    """
    from harness.errors import SandboxError

    if not request.command:
        raise SandboxError("the command is empty")
    out = Path(request.output_dir)
    if not out.is_absolute() or not out.is_dir():
        raise SandboxError(f"output folder {out} must be an existing absolute folder")
    if any(out.iterdir()):
        raise SandboxError(f"output folder {out} must be empty before a run")
    if not request.output_target.startswith("/") or not request.workdir.startswith("/"):
        raise SandboxError("output_target and workdir must be absolute paths inside the sandbox")
    targets = {request.output_target}
    for mount in request.mounts:
        if not Path(mount.source).is_absolute() or not Path(mount.source).exists():
            raise SandboxError(f"mount source {mount.source} must be an existing absolute path")
        if not mount.target.startswith("/") or mount.target in targets:
            raise SandboxError(f"mount target {mount.target!r} must be absolute and used once")
        targets.add(mount.target)
    limits = request.limits
    if min(limits.time_s, limits.memory_mb, limits.cpus, limits.pids, limits.output_mb, limits.log_kb) <= 0:
        raise SandboxError(f"every limit must be positive, got {limits}")


class LogCollector:
    """Keeps the head of a stream of output bytes up to a cap, counts the rest and keeps its tail.

    Memory stays bounded (cap + :data:`LOG_TAIL_BYTES` + one chunk) however much is fed. Thread-safe:
    one thread may :meth:`feed` while another reads :meth:`render`.

    Args:
        cap_bytes: most bytes the rendered log may take, marker included.
    """

    def __init__(self, cap_bytes: int) -> None:
        self.cap_bytes = cap_bytes
        self._keep = max(cap_bytes - _MARKER_RESERVE, 0)
        self._head = bytearray()
        self._tail: collections.deque[bytes] = collections.deque()
        self._tail_len = 0
        self.dropped_bytes = 0
        self.total_bytes = 0
        self._lock = threading.Lock()

    def feed(self, chunk: bytes) -> None:
        """Add a chunk of output (any size; bytes past the cap are counted and only the tail is kept)."""
        if not chunk:
            return
        with self._lock:
            self.total_bytes += len(chunk)
            room = self._keep - len(self._head)
            if room > 0:
                self._head += chunk[:room]
                chunk = chunk[room:]
            if not chunk:
                return
            self.dropped_bytes += len(chunk)
            if len(chunk) >= LOG_TAIL_BYTES:
                self._tail.clear()
                self._tail.append(bytes(chunk[-LOG_TAIL_BYTES:]))
                self._tail_len = LOG_TAIL_BYTES
                return
            self._tail.append(bytes(chunk))
            self._tail_len += len(chunk)
            while self._tail_len - len(self._tail[0]) >= LOG_TAIL_BYTES:
                self._tail_len -= len(self._tail.popleft())

    @property
    def truncated(self) -> bool:
        """Whether any byte was dropped."""
        return self.dropped_bytes > 0

    def render(self) -> tuple[str, bool, str]:
        """The log as the result carries it.

        Returns:
            ``(log, truncated, tail)``: the kept head decoded as UTF-8 with replacement, plus a marker line
            ``"[harness: log truncated at N KiB; M bytes dropped]"`` when cut; whether it was cut; the last
            :data:`LOG_TAIL_BYTES` bytes of the dropped part (``""`` when nothing was dropped).
        """
        with self._lock:
            head = self._head.decode("utf-8", errors="replace")
            if not self.dropped_bytes:
                return head, False, ""
            tail = b"".join(self._tail)[-LOG_TAIL_BYTES:].decode("utf-8", errors="replace")
            kb = self.cap_bytes / 1024
            marker = f"\n{LOG_TRUNCATED_MARKER} at {kb:g} KiB; {self.dropped_bytes} bytes dropped]\n"
            return head + marker, True, tail


def copy_output_tree(source: Path, dest: Path, budget_bytes: int) -> tuple[int, bool, list[str]]:
    """Copy a run's output folder to the host without trusting its content.

    Only regular files and folders are copied; symbolic links, devices, FIFOs and sockets are skipped (a link
    could point at a host file that the evaluator would then read). Files are opened with ``O_NOFOLLOW``.
    Sizes count against ``budget_bytes`` by their apparent length, so sparse files and hard links cannot
    inflate the host copy beyond the budget; a file that does not fit is dropped.

    Args:
        source: folder written by the run.
        dest: existing empty host folder that receives the copy.
        budget_bytes: most bytes copied in total.

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
                continue
            (dest / rel_root / name).mkdir(exist_ok=True)
        for name in files:
            rel = rel_root / name
            src = Path(root) / name
            st = os.lstat(src)
            if not stat.S_ISREG(st.st_mode):
                skipped.append(str(rel))
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


# --- signal safety (shared) -------------------------------------------------------------------------------------------


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGINT/SIGTERM back while cleanup runs (main thread only), then deliver what arrived."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.getsignal(sig)
        signal.signal(sig, lambda signum, _frame: received.append(signum))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for signum in received[:1]:
            logger.warning("signal %s arrived during sandbox cleanup; delivering it now", signum)
            os.kill(os.getpid(), signum)


@contextlib.contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """While a run is active in the main thread, turn a default SIGTERM into ``SystemExit(143)``.

    With Python's default action SIGTERM ends the process at once and leaves the container (or process group)
    running; as an exception it unwinds through the run's ``finally`` and everything is removed. A handler the
    application installed itself is left alone.
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return

    def _raise(_signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signal.SIGTERM)

    signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
