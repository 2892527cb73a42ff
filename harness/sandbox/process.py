"""The process sandbox: a :class:`RunRequest` as a local subprocess, for team laptops without Docker.

**It does not isolate.** The team's code runs with the harness user's rights: it can read any file that user can
(the hidden reference included, if it is on the machine), use the network and write anywhere. Use it only to
self-check your own code. Every run logs a warning and returns ``RunResult(isolated=False, warnings=...)``.

What it does enforce, on Linux:

* **time**: the command runs in its own session and process group; at ``time_s`` the whole group (and any
  process still in its session, and the command's descendants that started sessions of their own while their
  parent lives, such as papermill's kernel) is killed with SIGKILL. A process that calls ``setsid`` itself after
  its parent has gone escapes.
* **memory**: ``RLIMIT_DATA`` = ``memory_mb`` (private writable memory: heap, anonymous mappings, thread
  stacks) in the command and its children. Allocations past it fail, so Python raises ``MemoryError``; the run
  is reported ``OUT_OF_MEMORY`` when the command fails with ``MemoryError`` (any ``*MemoryError``, such as
  numpy's), ``std::bad_alloc``, "Cannot allocate memory" / "out of memory" near the end of its log, or is killed
  by SIGKILL that the harness did not send (the kernel's OOM killer). ``RLIMIT_AS`` is set to a generous
  backstop (4 x ``memory_mb`` + 1 GiB): address space alone would also count reservations that use no memory
  (malloc arenas, JIT caches) and fail healthy programs.
* **pids**: ``RLIMIT_NPROC`` = processes the user already has + ``pids``. It counts *all* processes of the
  user, not just the run's, and root ignores it, so it is a fork-bomb brake, not a guarantee.
* **output**: ``RLIMIT_FSIZE`` = ``output_mb`` (no single file the run writes may grow past the cap: the write
  fails with EFBIG; the artifact area's ``size_mb`` when larger), plus the output folder's total size (and the
  artifact area's) polled every 0.25 s; past the cap the group is killed and the run reported ``OUTPUT_LIMIT``.
  Links and special files left in the output folder are removed and listed in :attr:`RunResult.dropped`.
* **cpus**: CPU affinity to the first ``ceil(cpus)`` CPUs (Linux; elsewhere not limited).
* **logs**: stdout and stderr share one pipe, read live and capped at ``log_kb`` exactly like the Docker sandbox.

Paths. The command sees host folders where the Docker sandbox has ``/submission``, ``/input`` and ``/output``.
So one command works in both: every mount target (and ``output_target`` and ``workdir``) that appears in an
argv element or in a request ``env`` value as a whole path component is replaced by the host path - e.g.
``/input``, ``/input/x.csv``, ``--cwd=/submission`` and ``{"input_dir": "/input"}`` (papermill's
``--parameters_yaml``) are all mapped; ``/inputs`` or ``/data/input`` are not. ``HARNESS_<TARGET>_DIR``
variables (``HARNESS_SUBMISSION_DIR``, ``HARNESS_INPUT_DIR``, ``HARNESS_OUTPUT_DIR``) name the host folders,
as they name the sandbox folders under Docker. An argv[0] of ``python`` or ``python3`` runs the sandbox's
interpreter: ``python`` given to :class:`ProcessSandbox` (the task's own environment, :mod:`harness.venvs`; then
``PYTHONPATH``, ``PYTHONHOME``, ``PYTHONSTARTUP``, ``PYTHONUSERBASE`` and ``JUPYTER_*`` paths are dropped and user
site-packages disabled, so only that environment's packages import), else the harness's own (``sys.executable``),
whose packages are then all importable. ``HOME``,
``TMPDIR``, ``JUPYTER_RUNTIME_DIR``, ``MPLCONFIGDIR`` and ``IPYTHONDIR`` point into a fresh scratch folder that is
deleted after the run; the rest of the environment is inherited. With the harness's own Python, kernels get the
sandbox's message packer (:mod:`harness.stack`) from that scratch folder: a kernel config in the ``IPYTHONDIR``
profile and its module on ``PYTHONPATH`` (a task environment carries both itself).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import SandboxError
from harness.sandbox.base import BaseSandbox, Collected, Execution, RunOutcome, RunRequest, deferred_signals
from harness.sandbox.logs import LogPump
from harness.sandbox.output import sanitize_output_tree, tree_size

__all__ = ["NOT_ISOLATED_WARNING", "ProcessSandbox", "launcher_argv", "map_paths"]

logger = logging.getLogger(__name__)

#: The warning every process run logs and carries in :attr:`RunResult.warnings`.
NOT_ISOLATED_WARNING = (
    "the process sandbox does not isolate: the command ran as a local process with your user's rights "
    "(files, network); only time, memory, output size and logs were limited. Use the docker sandbox for judging."
)

#: Variables that would let a task environment's Python import from elsewhere.
_LEAKY_VARIABLES = frozenset({"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE"})
#: Scratch sub-folder holding the kernel's packer module when the harness's own Python runs the command.
_KERNEL_SITE = "kernel-site"


def _write_kernel_support(scratch: Path) -> None:
    """Give kernels of the harness's own Python the sandbox's message packer (:mod:`harness.stack`).

    A task environment (:mod:`harness.venvs`) and an image carry it with their ``etc/ipython`` config; this Python's
    prefix does not, so a kernel started here reads the same config from its ``IPYTHONDIR`` profile (the scratch
    ``tmp/ipython``) and imports the module from ``scratch/kernel-site`` (put on ``PYTHONPATH``). Without it,
    jupyter_client's own packer raises on a lone surrogate in the kernel's IOPub thread (lost output, and now and
    then a finished cell that waits out the time limit).
    """
    from harness.stack import KERNEL_CONFIG_SOURCE, write_kernel_session

    site = scratch / _KERNEL_SITE
    site.mkdir()
    write_kernel_session(site)
    profile = scratch / "tmp" / "ipython" / "profile_default"
    profile.mkdir(parents=True)
    (profile / "ipython_kernel_config.py").write_text(KERNEL_CONFIG_SOURCE, encoding="utf-8")


_OOM_PATTERNS = re.compile(
    r"^(\w+\.)*_?\w*MemoryError\b|std::bad_alloc|Cannot allocate memory|out of memory",
    re.MULTILINE | re.IGNORECASE,
)


def map_paths(text: str, mapping: Mapping[str, str]) -> str:
    """Replace sandbox paths in ``text`` by host paths, where they appear as whole path components.

    Args:
        text: an argv element or environment value, e.g. ``"/input/flights.csv"`` or ``'{"a": "/output"}'``.
        mapping: sandbox path (e.g. ``"/input"``) -> host path.

    Returns:
        ``text`` with each occurrence of a sandbox path that starts at the beginning, after a quote, ``=``,
        ``:``, ``,`` or whitespace, and ends at the end, before ``/``, a quote, ``,``, ``:``, ``;``, ``}``, ``]``
        or whitespace, replaced. Longer sandbox paths win (``/input/test`` before ``/input``).
    """
    keys = sorted((k for k in mapping if k.rstrip("/")), key=len, reverse=True)  # never map "/" itself
    if not keys:
        return text
    pattern = re.compile(
        r"(?:(?<=^)|(?<=[\s\"'=:,\[{(]))("
        + "|".join(re.escape(k.rstrip("/")) for k in keys)
        + r")(?=$|[/\s\"',:;}\])])"
    )
    return pattern.sub(lambda m: mapping.get(m.group(1)) or mapping[m.group(1) + "/"], text)


@dataclass(eq=False, kw_only=True)
class _ProcessRun(Execution):
    """One local run: what :meth:`ProcessSandbox._start` made, as it made it."""

    scratch: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    pump: LogPump | None = None
    maxrss_kib: int = 0
    closed: bool = False  # killed by ProcessSandbox.close()


class ProcessSandbox(BaseSandbox[_ProcessRun]):
    """Runs a :class:`RunRequest` as a local process group with rlimits. Does NOT isolate (see the module docs).

    :meth:`run` (the lifecycle of :class:`~harness.sandbox.base.BaseSandbox`) kills what is left of the process
    group whatever happens, and returns the run's :class:`~harness.sandbox.base.RunResult` with
    ``isolated=False``; ``request.image`` is ignored (the harness's own Python runs the command). Outcome
    precedence: killed by the harness (``TIMED_OUT``, ``OUTPUT_LIMIT``), then ``OUT_OF_MEMORY`` (see the module
    docs), then ``OUTPUT_LIMIT`` (a file reached the cap, or the total passed it), then ``EXITED``. ``run`` raises
    :class:`SandboxError` when the request is malformed or the sandbox cannot start at all; a command that is not
    found is the team's problem: it exits 127 with "harness: cannot start ..." in the log.

    Args:
        work_dir: parent of each run's scratch folder (HOME, TMPDIR); default: the system temp folder.
        poll_interval_s: seconds between output-size checks.
        python: the interpreter ``python``/``python3`` commands run (a task environment made by
            :func:`harness.venvs.ensure_task_venv`); default: the harness's own.

    Attributes:
        name: ``"process"``.
    """

    name = "process"
    isolated = False

    def __init__(
        self, *, work_dir: Path | None = None, poll_interval_s: float = 0.25, python: str | Path | None = None
    ) -> None:
        super().__init__()
        self.work_dir = Path(work_dir) if work_dir else Path(tempfile.gettempdir())
        self.poll_interval_s = poll_interval_s
        self.python = str(python) if python else None
        self._active: set[_ProcessRun] = set()  # runs whose command has not been reaped yet
        self._lock = threading.Lock()

    # -- paths and environment ------------------------------------------------------------------------------
    @staticmethod
    def path_map(request: RunRequest) -> dict[str, str]:
        """Sandbox path -> host path for every mount and the output folder."""
        mapping = {m.target.rstrip("/") or "/": str(Path(m.source).resolve()) for m in request.mounts}
        mapping[request.output_target.rstrip("/")] = str(Path(request.output_dir).resolve())
        if request.artifact_area is not None:
            mapping[request.artifact_area.target.rstrip("/")] = str(Path(request.artifact_area.host_dir).resolve())
        return mapping

    def command(self, request: RunRequest) -> list[str]:
        """The argv as run on the host: sandbox paths mapped, ``python``/``python3`` -> ``sys.executable``."""
        mapping = self.path_map(request)
        argv = [map_paths(arg, mapping) for arg in request.command]
        if argv and argv[0] in {"python", "python3"}:
            argv[0] = self.python or sys.executable
        return argv

    def environment(self, request: RunRequest, scratch: Path) -> dict[str, str]:
        """The command's environment: inherited, then the policy's variables, then the request's (mapped)."""
        mapping = self.path_map(request)
        env = dict(os.environ)
        if self.python:  # only the task environment's packages: nothing from the harness's paths or the user's
            for key in [k for k in env if k in _LEAKY_VARIABLES or k.startswith("JUPYTER_")]:
                del env[key]
            env.update(PYTHONNOUSERSITE="1", VIRTUAL_ENV=str(Path(self.python).parent.parent))
        home, tmp = scratch / "home", scratch / "tmp"
        env.update(
            HOME=str(home),
            TMPDIR=str(tmp),
            JUPYTER_RUNTIME_DIR=str(tmp / "jupyter-runtime"),
            MPLCONFIGDIR=str(tmp / "matplotlib"),
            IPYTHONDIR=str(tmp / "ipython"),
            PYTHONDONTWRITEBYTECODE="1",
            PYTHONUNBUFFERED="1",
            PATH=os.pathsep.join([str(Path(self.python or sys.executable).parent), env.get("PATH", os.defpath)]),
            HARNESS_SANDBOX=self.name,
            HARNESS_OUTPUT_DIR=mapping[request.output_target.rstrip("/")],
        )
        if not self.python:  # the kernel's packer, which this Python's prefix does not configure (see _start)
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(scratch / _KERNEL_SITE), env.get("PYTHONPATH")]))
        for mount in request.mounts:
            key = "HARNESS_" + mount.target.strip("/").replace("/", "_").upper() + "_DIR"
            env[key] = mapping[mount.target.rstrip("/") or "/"]
        env.update({key: map_paths(value, mapping) for key, value in request.env})
        return env

    def _cwd(self, request: RunRequest, scratch: Path) -> str:
        mapped = map_paths(request.workdir, self.path_map(request))
        return mapped if mapped != request.workdir or Path(mapped).is_dir() else str(scratch / "home")

    # -- the lifecycle's steps (see BaseSandbox) ---------------------------------------------------------------
    def _prepare(self, request: RunRequest) -> _ProcessRun:
        logger.warning("%s (run %s)", NOT_ISOLATED_WARNING, request.label or "-")
        return _ProcessRun(request=request, poll_s=self.poll_interval_s, warnings=[NOT_ISOLATED_WARNING])

    def _start(self, run: _ProcessRun) -> None:
        request = run.request
        run.scratch = Path(tempfile.mkdtemp(prefix="harness-process-", dir=self.work_dir))
        for sub in ("home", "tmp"):
            (run.scratch / sub).mkdir()
        if not self.python:
            _write_kernel_support(run.scratch)
        argv = self.command(request)
        env = self.environment(request, run.scratch)
        cwd = self._cwd(request, run.scratch)
        try:
            area = request.artifact_area
            proc = subprocess.Popen(
                launcher_argv(argv, request.limits, max(area.size_mb, request.limits.output_mb) if area else None),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            raise SandboxError(f"cannot start the process sandbox's launcher: {exc.strerror or exc}") from None
        run.proc = proc
        run.name = f"proc-{proc.pid}"
        with self._lock:
            self._active.add(run)
        assert proc.stdout is not None
        stdout = proc.stdout
        read = getattr(stdout, "read1", stdout.read)

        def _close() -> None:
            with contextlib.suppress(OSError):
                stdout.close()

        run.pump = LogPump(iter(lambda: read(65536), b""), run.logs, close=_close, name=f"{run.name}-log")
        run.pump.start()

    def _wait(self, run: _ProcessRun) -> int | None:
        assert run.proc is not None
        try:
            _pid, raw, usage = os.wait4(run.proc.pid, 0)
            maxrss = int(usage.ru_maxrss)
        except ChildProcessError:  # reaped elsewhere
            raw, maxrss = 0, 0
        finally:
            with self._lock:  # reaped: close() must not signal this pid any more
                self._active.discard(run)
        if sys.platform == "darwin":  # ru_maxrss is in bytes there, KiB on Linux
            maxrss //= 1024
        run.maxrss_kib = maxrss
        run.proc.returncode = os.waitstatus_to_exitcode(raw)
        return run.proc.returncode

    def _kill(self, run: _ProcessRun) -> None:
        assert run.proc is not None
        _kill_session(run.proc.pid)

    def _exceeded(self, run: _ProcessRun) -> bool:
        request = run.request
        if tree_size(Path(request.output_dir)) > int(request.limits.output_mb) * 1024 * 1024:
            return True
        area = request.artifact_area
        return area is not None and tree_size(Path(area.host_dir)) > int(area.size_mb) * 1024 * 1024

    def _stop(self, run: _ProcessRun) -> None:
        if run.proc is None or run.pump is None:
            return
        with deferred_signals():
            with self._lock:
                self._active.discard(run)
            _kill_session(run.proc.pid)
            run.exited.wait(10.0)
            run.pump.stop(2.0)

    def _collect(self, run: _ProcessRun) -> Collected:
        # The outcome precedence is in the class docs; the lifecycle puts a limit it killed for first.
        if run.closed:
            raise SandboxError("the run was stopped: its process sandbox was closed while it ran")
        cap_bytes = int(run.request.limits.output_mb) * 1024 * 1024
        dropped: list[tuple[str, str]] = []
        output_bytes, biggest = sanitize_output_tree(Path(run.request.output_dir), strict=False, dropped=dropped)
        if run.request.artifact_area is not None:  # its own cap, not the team's output
            sanitize_output_tree(Path(run.request.artifact_area.host_dir), strict=False)
        outcome = self._outcome(run.exit_code, run.log + run.log_tail, output_bytes, biggest, cap_bytes)
        peak_mb = run.maxrss_kib / 1024 if run.maxrss_kib else None
        return Collected(outcome, output_bytes, peak_mb, tuple(dropped))

    def _release(self, run: _ProcessRun) -> None:
        if run.scratch is not None:
            shutil.rmtree(run.scratch, ignore_errors=True)

    @staticmethod
    def _outcome(code: int | None, log_text: str, output_bytes: int, biggest: int, cap: int) -> RunOutcome:
        if code not in (0, None):
            end = log_text[-8192:]
            if code == -signal.SIGKILL or _OOM_PATTERNS.search(end):
                return RunOutcome.OUT_OF_MEMORY
        if output_bytes > cap or biggest >= cap:
            return RunOutcome.OUTPUT_LIMIT
        return RunOutcome.EXITED

    # -- closing -----------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Kill the process groups of the runs in progress (their ``run`` raises :class:`SandboxError`).

        Runs in any thread (a coordinator shutting down while worker threads run); the sandbox stays usable.
        """
        with self._lock:
            for run in self._active:
                run.closed = True
                if run.proc is not None:
                    _kill_session(run.proc.pid)


# Runs in a fresh interpreter (``python -I -S -c``) between the harness and the command: applies the rlimits and
# CPU affinity, then execs the command. (A ``preexec_fn`` would do the same but can deadlock in a threaded
# harness.) argv[1] is JSON: {"limits": [[name, value], ...], "cpus": [...] | null, "argv": [...]}.
_LAUNCHER = """
import json, os, resource, sys
spec = json.loads(sys.argv[1])
for name, value in spec["limits"]:
    which = getattr(resource, name, None)
    if which is None:
        continue
    hard = resource.getrlimit(which)[1]
    value = value if hard == resource.RLIM_INFINITY else min(value, hard)
    try:
        resource.setrlimit(which, (value, value))
    except (ValueError, OSError):
        pass
if spec["cpus"] and hasattr(os, "sched_setaffinity"):
    try:
        os.sched_setaffinity(0, spec["cpus"])
    except OSError:
        pass
argv = spec["argv"]
try:
    os.execvp(argv[0], argv)
except OSError as exc:
    sys.stderr.write(f"harness: cannot start {argv[0]!r}: {exc.strerror}\\n")
    sys.exit(127)
"""


def launcher_argv(argv: list[str], limits: Any, file_mb: int | None = None) -> list[str]:
    """The argv that starts ``argv`` under the rlimits of ``limits`` (see the module docs for which).

    ``file_mb`` replaces ``limits.output_mb`` as the cap on one file's size (``RLIMIT_FSIZE``), e.g. when the
    request's artifact area is larger than the output cap."""
    memory = int(limits.memory_mb) * 1024 * 1024
    spec: dict[str, Any] = {
        "limits": [
            ["RLIMIT_DATA", memory],
            ["RLIMIT_AS", 4 * memory + (1 << 30)],
            ["RLIMIT_FSIZE", int(file_mb or limits.output_mb) * 1024 * 1024],
            ["RLIMIT_NPROC", _user_process_count() + int(limits.pids)],
            ["RLIMIT_CORE", 0],
        ],
        "cpus": None,
        "argv": argv,
    }
    if hasattr(os, "sched_getaffinity"):
        available = sorted(os.sched_getaffinity(0))
        spec["cpus"] = available[: max(1, math.ceil(float(limits.cpus)))]
    return [sys.executable, "-I", "-S", "-c", _LAUNCHER, json.dumps(spec)]


def _user_process_count() -> int:
    uid = os.getuid()
    proc = Path("/proc")
    if not proc.is_dir():
        return 0
    count = 0
    for entry in proc.iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if entry.stat().st_uid == uid:
                    count += 1
    return count


def _session_members(sid: int) -> list[int]:
    """Processes in the session ``sid``, and every descendant of ``sid`` that started a session of its own (the
    kernel jupyter_client starts for papermill does), found through their parents before anything is killed."""
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    parents: dict[int, int] = {}
    members: list[int] = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents[int(entry.name)] = int(fields[1])  # fields after ")": state ppid pgrp session ...
        if int(fields[3]) == sid:
            members.append(int(entry.name))
    for pid in parents:
        seen, up = 0, parents.get(pid, 0)
        while up > 1 and up != sid and seen < 64:  # walk up to the run's leader (bounded: no cycles)
            up, seen = parents.get(up, 0), seen + 1
        if up == sid and pid not in members:
            members.append(pid)
    return members


def _kill_session(pid: int) -> None:
    """SIGKILL the run's process group, every process still in its session (leader included) and the leader's
    descendants in sessions of their own."""
    members = _session_members(pid)  # before the kill: a killed parent's children are re-parented
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    for member in members + [m for m in _session_members(pid) if m not in members]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(member, signal.SIGKILL)
