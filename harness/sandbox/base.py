"""The sandbox contract and the one run lifecycle every sandbox shares.

A :class:`Sandbox` runs one command from one image with mounts and limits, and returns a :class:`RunResult`.
Implementations: ``docker`` (production, isolating) and ``process`` (a local subprocess for team laptops
without Docker; it does NOT isolate). Both take the same :class:`RunRequest`.

:class:`BaseSandbox` owns the lifecycle of a run, written once: validate the request, start the command, wait for
it in a waiter thread under a deadline, kill it at a limit, stop what was started, collect the outputs, release
everything, build the result. A sandbox implements the steps (``_prepare``, ``_start``, ``_wait``, ``_kill``,
``_stop``, ``_collect``, ``_release``; see :class:`BaseSandbox`). Signal safety is the lifecycle's too:
:func:`sigterm_unwinds` makes a SIGTERM unwind through the clean-up, :func:`deferred_signals` holds Ctrl-C back
while it runs.

The shared pieces live beside this module: :mod:`harness.sandbox.logs` (the bounded log and its pump) and
:mod:`harness.sandbox.output` (walking, sanitizing and copying output trees). :class:`LogCollector`,
:func:`copy_output_tree` and the log constants are re-exported here, where they used to live.
"""

from __future__ import annotations

import abc
import contextlib
import enum
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, NamedTuple, Protocol, Self, TypeVar, final, runtime_checkable

from harness.errors import SandboxError
from harness.sandbox.logs import LOG_TAIL_BYTES, LOG_TRUNCATED_MARKER, LogCollector
from harness.sandbox.output import copy_output_tree

__all__ = [
    "LOG_TAIL_BYTES",
    "LOG_TRUNCATED_MARKER",
    "ArtifactArea",
    "BaseSandbox",
    "Collected",
    "Execution",
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
class ArtifactArea:
    """A second writable folder, for what the harness itself records during a run (papermill's executed notebook).

    It has its own cap and does not count against ``limits.output_mb``: what a notebook displays never costs the
    team its output space. Only regular files come back from it (links and special files are dropped); a full
    area is not the team's output limit.

    Attributes:
        host_dir: existing, empty absolute host folder that receives the area's files after the run.
        target: where it appears inside the sandbox, e.g. ``/notebook``.
        size_mb: its cap in MiB (a hard cap where the output folder's is: a loop-mounted file system as root).
    """

    host_dir: Path
    target: str
    size_mb: int


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
        artifact_area: a second, separately capped writable folder for the harness's own record of the run
            (``None``: none).
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
    artifact_area: ArtifactArea | None = None


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
        dropped: entries of the output folder that were not kept because they are not regular files or folders,
            as ``(path relative to the output folder, kind)``; kind is one of ``"symbolic link"``,
            ``"named pipe"``, ``"socket"``, ``"device node"``, ``"special file"`` (see
            :func:`harness.sandbox.output.entry_kind`). Nothing they point at was read.
        stages: wall-clock seconds of the lifecycle's steps, as ``(stage, seconds)`` in order: ``sandbox_start``
            (checks, output areas, container created and started), ``command`` (the command itself, as
            ``duration_s``), ``collect`` (stopped, removed, outputs copied, areas released).
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
    dropped: tuple[tuple[str, str], ...] = ()
    stages: tuple[tuple[str, float], ...] = ()

    @property
    def ok(self) -> bool:
        """True when the command exited by itself with code 0."""
        return self.outcome is RunOutcome.EXITED and self.exit_code == 0


@runtime_checkable
class Sandbox(Protocol):
    """Runs one :class:`RunRequest` and always cleans up after it (container/process removed, even on Ctrl-C).

    A sandbox is a context manager: ``with get_sandbox("docker") as box: box.run(request)`` closes it at the end.

    Raises (from ``run``):
        EngineUnavailableError: no engine to run in (docker only).
        ImageError: the image does not exist locally.
        SandboxError: the sandbox itself failed (not the team's code).
    """

    name: str

    def run(self, request: RunRequest) -> RunResult:
        """Run the request to completion and return what happened."""
        ...

    def close(self) -> None:
        """Stop the runs still in progress in other threads (they end with :class:`SandboxError`) and release
        what the sandbox holds (e.g. its engine connection). The sandbox may be used again afterwards."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc_info: object) -> None: ...


# --- checking a request ----------------------------------------------------------------------------------


def validate_request(request: RunRequest) -> None:
    """Check a request's paths and limits before anything is started.

    Raises:
        SandboxError: the command is empty, a mount source, the output folder or the artifact area does not
            exist, the output folder or the artifact area is not empty, a path is not absolute, a target is used
            twice, or a limit is not positive.
    """

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
    area = request.artifact_area
    if area is not None:
        host = Path(area.host_dir)
        if not host.is_absolute() or not host.is_dir() or any(host.iterdir()):
            raise SandboxError(f"artifact area {host} must be an existing, empty absolute folder")
        if not area.target.startswith("/") or area.target in targets or area.size_mb <= 0:
            raise SandboxError(
                f"artifact area target {area.target!r} must be absolute and used once, its size positive"
            )
        targets.add(area.target)
    for mount in request.mounts:
        if not Path(mount.source).is_absolute() or not Path(mount.source).exists():
            raise SandboxError(f"mount source {mount.source} must be an existing absolute path")
        if not mount.target.startswith("/") or mount.target in targets:
            raise SandboxError(f"mount target {mount.target!r} must be absolute and used once")
        targets.add(mount.target)
    limits = request.limits
    if min(limits.time_s, limits.memory_mb, limits.cpus, limits.pids, limits.output_mb, limits.log_kb) <= 0:
        raise SandboxError(f"every limit must be positive, got {limits}")


# --- signal safety ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGINT/SIGTERM/SIGHUP back while cleanup runs (main thread only), then deliver what arrived."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
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
    """While a run is active in the main thread, turn a default SIGTERM or SIGHUP into ``SystemExit(128 + signum)``.

    With Python's default action these signals end the process at once and leave the container (or process group)
    running; as an exception they unwind through the run's ``finally`` and everything is removed. A handler the
    application installed itself (the CLI's :func:`harness.interrupts.graceful_shutdown`) is left alone.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = [sig for sig in (signal.SIGTERM, signal.SIGHUP) if signal.getsignal(sig) is signal.SIG_DFL]

    def _raise(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    for sig in caught:
        signal.signal(sig, _raise)
    try:
        yield
    finally:
        for sig in caught:
            signal.signal(sig, signal.SIG_DFL)


# --- the run lifecycle ----------------------------------------------------------------------------------------


@dataclass(eq=False, kw_only=True)
class Execution:
    """One run in progress, as the lifecycle tracks it; each sandbox subclasses it for its own handles.

    Attributes:
        request: the run's request.
        name: the run's name in logs and thread names when the request has no label (e.g. the container's).
        poll_s: seconds between two :meth:`BaseSandbox._exceeded` checks while the command runs (``None``: none).
        warnings: notes for :attr:`RunResult.warnings`.
        image_id: for :attr:`RunResult.image_id`.
        logs: the bounded log the sandbox's pump feeds (``request.limits.log_kb`` KiB).
        exited: set when :meth:`BaseSandbox._wait` returned (or failed).
        exit_code: what ``_wait`` returned, once the lifecycle read it; ``_collect`` may fill it in when ``None``.
        killed_for: the limit the lifecycle killed the command for (``TIMED_OUT``, ``OUTPUT_LIMIT``), or ``None``.
        duration_s: wall-clock seconds from the command's start to its end.
        started_at: ``time.monotonic()`` when the command was started (``None`` until then).
        log, log_truncated, log_tail: the rendered log (:meth:`LogCollector.render`), set before ``_collect``.
    """

    request: RunRequest
    name: str = "-"
    poll_s: float | None = None
    warnings: list[str] = field(default_factory=list)
    image_id: str = ""
    logs: LogCollector = field(init=False)
    exited: threading.Event = field(default_factory=threading.Event, init=False)
    exit_code: int | None = field(default=None, init=False)
    killed_for: RunOutcome | None = field(default=None, init=False)
    duration_s: float = field(default=0.0, init=False)
    started_at: float | None = field(default=None, init=False)
    log: str = field(default="", init=False)
    log_truncated: bool = field(default=False, init=False)
    log_tail: str = field(default="", init=False)

    def __post_init__(self) -> None:
        self.logs = LogCollector(int(self.request.limits.log_kb) * 1024)


class Collected(NamedTuple):
    """What :meth:`BaseSandbox._collect` found after the command ended.

    Attributes:
        outcome: how the command ended, when the lifecycle did not kill it (a limit it killed for comes first).
        output_bytes: bytes in the request's output folder.
        peak_memory_mb: peak memory use in MiB (``None`` if unknown); the lifecycle rounds it.
        dropped: :attr:`RunResult.dropped`.
    """

    outcome: RunOutcome
    output_bytes: int
    peak_memory_mb: float | None
    dropped: tuple[tuple[str, str], ...] = ()


RunT = TypeVar("RunT", bound=Execution)


class BaseSandbox(abc.ABC, Generic[RunT]):
    """The run lifecycle, written once; a sandbox implements its steps for one kind of ``RunT`` (an :class:`Execution`).

    :meth:`run` (final) calls, in this order:

    1. :func:`validate_request` (a malformed request starts nothing);
    2. ``run = _prepare(request)``: checks that leave nothing to clean up (the image exists) and the per-run state;
    3. with SIGTERM unwinding like an exception (:func:`sigterm_unwinds`):

       a. ``_start(run)``: acquire the run's resources (output area, scratch folder), start the command and a
          :class:`~harness.sandbox.logs.LogPump` into ``run.logs``; set what it made on ``run`` as it goes;
       b. a waiter thread blocks in ``_wait(run)`` until the command ends (its exit code);
       c. the deadline loop: wait for the exit, and every ``run.poll_s`` seconds ask ``_exceeded(run)``; at
          ``limits.time_s`` (``TIMED_OUT``) or when exceeded (``OUTPUT_LIMIT``) call ``_kill(run)`` and wait up
          to 10 s for the exit; then ``run.duration_s``; a failure of ``_wait`` is raised here;
       d. ``_stop(run)``, whatever happened (also after a partial ``_start``): stop what ``_start`` started that
          is still going (the command if not ended, the pump, samplers);
       e. on success only, ``_collect(run)``: the outputs and the outcome (:class:`Collected`);
       f. ``_release(run)``, whatever happened, with Ctrl-C/SIGTERM held back (:func:`deferred_signals`):
          release what ``_start`` acquired (it may have stopped half-way);

    4. the :class:`RunResult` (``exit_code`` is ``None`` when killed) and one log line.

    A step that must not be interrupted by Ctrl-C wraps itself in :func:`deferred_signals`.

    Attributes:
        name: the sandbox's name (:attr:`RunResult.sandbox`).
        isolated: :attr:`RunResult.isolated`.
    """

    name: str
    isolated: ClassVar[bool] = True

    def __init__(self) -> None:
        self._runs_in_progress = 0
        self._idle = threading.Condition()

    @property
    def busy(self) -> bool:
        """Whether a :meth:`run` is in progress."""
        with self._idle:
            return self._runs_in_progress > 0

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no :meth:`run` of this sandbox is in progress (each has released what it held).

        Used after :meth:`close` by a process about to exit (a closing Dask worker), so that output areas are
        unmounted before it goes. Returns whether it became idle within ``timeout_s`` seconds.
        """
        with self._idle:
            return self._idle.wait_for(lambda: self._runs_in_progress == 0, timeout=timeout_s)

    @final
    def run(self, request: RunRequest) -> RunResult:
        """Run the request to completion and clean up after it, whatever happens (see the class docs for the steps).

        Raises:
            SandboxError: the request is malformed or the sandbox failed (subclasses document more).
        """
        validate_request(request)
        began = time.monotonic()
        run = self._prepare(request)
        with self._idle:
            self._runs_in_progress += 1
        try:
            with sigterm_unwinds():
                try:
                    self._supervise(run)
                    run.log, run.log_truncated, run.log_tail = run.logs.render()
                    collected = self._collect(run)
                finally:
                    with deferred_signals():
                        self._release(run)
        finally:
            with self._idle:
                self._runs_in_progress -= 1
                self._idle.notify_all()
        command_started = run.started_at if run.started_at is not None else began
        stages = (
            ("sandbox_start", round(command_started - began, 3)),
            ("command", round(run.duration_s, 3)),
            ("collect", round(max(0.0, time.monotonic() - command_started - run.duration_s), 3)),
        )
        outcome = run.killed_for if run.killed_for is not None else collected.outcome
        peak_mb = collected.peak_memory_mb
        result = RunResult(
            outcome=outcome,
            exit_code=None if run.killed_for else run.exit_code,
            duration_s=round(run.duration_s, 3),
            peak_memory_mb=round(peak_mb, 1) if peak_mb is not None else None,
            log=run.log,
            log_truncated=run.log_truncated,
            output_bytes=collected.output_bytes,
            image_id=run.image_id,
            sandbox=self.name,
            log_tail=run.log_tail,
            isolated=self.isolated,
            warnings=tuple(run.warnings),
            dropped=collected.dropped,
            stages=stages,
        )
        logging.getLogger(type(self).__module__).info(
            "run %s: %s exit=%s %.2fs peak=%s MiB log=%s B",
            request.label or run.name,
            result.outcome.value,
            result.exit_code,
            result.duration_s,
            result.peak_memory_mb,
            run.logs.total_bytes,
        )
        return result

    def _supervise(self, run: RunT) -> None:
        """Steps 3a-3d: start, wait under the deadline, kill at a limit, stop."""
        exit_box: list[int | None] = []
        failure: list[BaseException] = []

        def _waiter() -> None:
            try:
                exit_box.append(self._wait(run))
            except BaseException as exc:  # surfaced in the calling thread
                failure.append(exc)
            finally:
                run.exited.set()

        try:
            self._start(run)
            started = run.started_at = time.monotonic()
            threading.Thread(target=_waiter, name=f"{run.name}-wait", daemon=True).start()
            deadline = started + float(run.request.limits.time_s)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    run.killed_for = RunOutcome.TIMED_OUT
                    break
                if run.exited.wait(remaining if run.poll_s is None else min(remaining, run.poll_s)):
                    break
                if self._exceeded(run):
                    run.killed_for = RunOutcome.OUTPUT_LIMIT
                    break
            if run.killed_for is not None:
                self._kill(run)
                run.exited.wait(10.0)
            run.duration_s = time.monotonic() - started
            if failure:
                raise failure[0]
            run.exit_code = exit_box[0] if exit_box else None
        finally:
            self._stop(run)

    # -- the steps a sandbox implements ------------------------------------------------------------------------
    @abc.abstractmethod
    def _prepare(self, request: RunRequest) -> RunT:
        """The per-run state, after checks that leave nothing to clean up (nothing is started yet).

        Raises:
            SandboxError: the run cannot be made here (e.g. :class:`~harness.errors.ImageError`).
        """

    @abc.abstractmethod
    def _start(self, run: RunT) -> None:
        """Acquire the run's resources, start the log pump and the command; returns once the command runs.

        Record each resource on ``run`` as soon as it exists: if this raises, ``_stop`` and ``_release`` clean up
        what is recorded.
        """

    @abc.abstractmethod
    def _wait(self, run: RunT) -> int | None:
        """Block until the command ends (runs in the waiter thread); returns its exit code (``None``: unknown)."""

    @abc.abstractmethod
    def _kill(self, run: RunT) -> None:
        """Kill the command now (it may have ended already)."""

    def _exceeded(self, run: RunT) -> bool:
        """Whether the run wrote more output than its cap and must be killed (polled every ``run.poll_s``)."""
        return False

    @abc.abstractmethod
    def _stop(self, run: RunT) -> None:
        """Stop what ``_start`` started and is still going; called in a ``finally``, also after a partial start."""

    @abc.abstractmethod
    def _collect(self, run: RunT) -> Collected:
        """After a run that was not interrupted: bring its outputs into ``request.output_dir`` and judge its outcome.

        Raises:
            SandboxError: the sandbox failed while collecting.
        """

    @abc.abstractmethod
    def _release(self, run: RunT) -> None:
        """Release what ``_start`` acquired (possibly half of it); called with signals held back, whatever happened."""

    # -- closing -----------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the runs in progress in other threads and release what the sandbox holds (here: nothing)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
