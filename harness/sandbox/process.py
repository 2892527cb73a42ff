"""The process sandbox: a :class:`RunRequest` as a local subprocess, for team laptops without Docker.

**It does not isolate.** The team's code runs with the harness user's rights: it can read any file that user can
(the hidden reference included, if it is on the machine), use the network and write anywhere. Use it only to
self-check your own code. Every run logs a warning and returns ``RunResult(isolated=False, warnings=...)``.

What it does enforce, on Linux:

* **time**: the command runs in its own session and process group; at ``time_s`` the whole group (and any
  process still in its session) is killed with SIGKILL. A process that calls ``setsid`` itself escapes.
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
  fails with EFBIG), plus the output folder's total size polled every 0.25 s; past the cap the group is killed
  and the run reported ``OUTPUT_LIMIT``.
* **cpus**: CPU affinity to the first ``ceil(cpus)`` CPUs (Linux; elsewhere not limited).
* **logs**: stdout and stderr share one pipe, read live and capped at ``log_kb`` exactly like the Docker sandbox.

Paths. The command sees host folders where the Docker sandbox has ``/submission``, ``/input`` and ``/output``.
So one command works in both: every mount target (and ``output_target`` and ``workdir``) that appears in an
argv element or in a request ``env`` value as a whole path component is replaced by the host path - e.g.
``/input``, ``/input/x.csv``, ``--cwd=/submission`` and ``{"input_dir": "/input"}`` (papermill's
``--parameters_yaml``) are all mapped; ``/inputs`` or ``/data/input`` are not. ``HARNESS_<TARGET>_DIR``
variables (``HARNESS_SUBMISSION_DIR``, ``HARNESS_INPUT_DIR``, ``HARNESS_OUTPUT_DIR``) name the host folders,
as they name the sandbox folders under Docker. An argv[0] of ``python`` or ``python3`` runs the harness's own
interpreter (``sys.executable``), so papermill and ipykernel are those of the harness's environment. ``HOME``,
``TMPDIR``, ``JUPYTER_RUNTIME_DIR``, ``MPLCONFIGDIR`` and ``IPYTHONDIR`` point into a fresh scratch folder that is
deleted after the run; the rest of the environment is inherited.
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
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from harness.errors import SandboxError
from harness.sandbox.base import (
    LogCollector,
    RunOutcome,
    RunRequest,
    RunResult,
    deferred_signals,
    sigterm_unwinds,
    validate_request,
)

__all__ = ["NOT_ISOLATED_WARNING", "ProcessSandbox", "launcher_argv", "map_paths"]

logger = logging.getLogger(__name__)

#: The warning every process run logs and carries in :attr:`RunResult.warnings`.
NOT_ISOLATED_WARNING = (
    "the process sandbox does not isolate: the command ran as a local process with your user's rights "
    "(files, network); only time, memory, output size and logs were limited. Use the docker sandbox for judging."
)

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


class ProcessSandbox:
    """Runs a :class:`RunRequest` as a local subprocess with rlimits. Does NOT isolate (see the module docs).

    Args:
        work_dir: parent of each run's scratch folder (HOME, TMPDIR); default: the system temp folder.
        poll_interval_s: seconds between output-size checks.

    Attributes:
        name: ``"process"``.
    """

    name = "process"

    def __init__(self, *, work_dir: Path | None = None, poll_interval_s: float = 0.25) -> None:
        self.work_dir = Path(work_dir) if work_dir else Path(tempfile.gettempdir())
        self.poll_interval_s = poll_interval_s

    # -- paths and environment ------------------------------------------------------------------------------
    @staticmethod
    def path_map(request: RunRequest) -> dict[str, str]:
        """Sandbox path -> host path for every mount and the output folder."""
        mapping = {m.target.rstrip("/") or "/": str(Path(m.source).resolve()) for m in request.mounts}
        mapping[request.output_target.rstrip("/")] = str(Path(request.output_dir).resolve())
        return mapping

    def command(self, request: RunRequest) -> list[str]:
        """The argv as run on the host: sandbox paths mapped, ``python``/``python3`` -> ``sys.executable``."""
        mapping = self.path_map(request)
        argv = [map_paths(arg, mapping) for arg in request.command]
        if argv and argv[0] in {"python", "python3"}:
            argv[0] = sys.executable
        return argv

    def environment(self, request: RunRequest, scratch: Path) -> dict[str, str]:
        """The command's environment: inherited, then the policy's variables, then the request's (mapped)."""
        mapping = self.path_map(request)
        env = dict(os.environ)
        home, tmp = scratch / "home", scratch / "tmp"
        env.update(
            HOME=str(home),
            TMPDIR=str(tmp),
            JUPYTER_RUNTIME_DIR=str(tmp / "jupyter-runtime"),
            MPLCONFIGDIR=str(tmp / "matplotlib"),
            IPYTHONDIR=str(tmp / "ipython"),
            PYTHONDONTWRITEBYTECODE="1",
            PYTHONUNBUFFERED="1",
            PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", os.defpath)]),
            HARNESS_SANDBOX=self.name,
            HARNESS_OUTPUT_DIR=mapping[request.output_target.rstrip("/")],
        )
        for mount in request.mounts:
            key = "HARNESS_" + mount.target.strip("/").replace("/", "_").upper() + "_DIR"
            env[key] = mapping[mount.target.rstrip("/") or "/"]
        env.update({key: map_paths(value, mapping) for key, value in request.env})
        return env

    def _cwd(self, request: RunRequest, scratch: Path) -> str:
        mapped = map_paths(request.workdir, self.path_map(request))
        return mapped if mapped != request.workdir or Path(mapped).is_dir() else str(scratch / "home")

    # -- running --------------------------------------------------------------------------------------------
    def run(self, request: RunRequest) -> RunResult:
        """Run the request as a local process group and kill what is left of it, whatever happens.

        Args:
            request: what to run; ``request.image`` is ignored (the harness's own Python runs the command).

        Returns:
            The run's :class:`RunResult` with ``isolated=False``. Outcome precedence: killed by the harness
            (``TIMED_OUT``, ``OUTPUT_LIMIT``), then ``OUT_OF_MEMORY`` (see the module docs), then
            ``OUTPUT_LIMIT`` (a file reached the cap, or the total passed it), then ``EXITED``.

        Raises:
            SandboxError: the request is malformed or the sandbox cannot start at all. A command that is not
                found is the team's problem: it exits 127 with "harness: cannot start ..." in the log.
        """
        validate_request(request)
        logger.warning("%s (run %s)", NOT_ISOLATED_WARNING, request.label or "-")
        limits = request.limits
        logs = LogCollector(int(limits.log_kb) * 1024)
        cap_bytes = int(limits.output_mb) * 1024 * 1024
        output_dir = Path(request.output_dir)
        scratch = Path(tempfile.mkdtemp(prefix="harness-process-", dir=self.work_dir))
        try:
            for sub in ("home", "tmp"):
                (scratch / sub).mkdir()
            argv = self.command(request)
            env = self.environment(request, scratch)
            cwd = self._cwd(request, scratch)
            with sigterm_unwinds():
                code, killed_for, duration, maxrss_kib = self._execute(argv, env, cwd, limits, logs, output_dir)
        finally:
            with deferred_signals():
                shutil.rmtree(scratch, ignore_errors=True)
        output_bytes, biggest = _sanitize_output(output_dir)
        log, truncated, tail = logs.render()
        outcome = self._outcome(code, killed_for, log + tail, output_bytes, biggest, cap_bytes)
        result = RunResult(
            outcome=outcome,
            exit_code=None if killed_for else code,
            duration_s=round(duration, 3),
            peak_memory_mb=round(maxrss_kib / 1024, 1) if maxrss_kib else None,
            log=log,
            log_truncated=truncated,
            output_bytes=output_bytes,
            image_id="",
            sandbox=self.name,
            log_tail=tail,
            isolated=False,
            warnings=(NOT_ISOLATED_WARNING,),
        )
        logger.info(
            "run %s: %s exit=%s %.2fs peak=%s MiB",
            request.label or "-",
            outcome.value,
            result.exit_code,
            result.duration_s,
            result.peak_memory_mb,
        )
        return result

    def _execute(
        self,
        argv: list[str],
        env: dict[str, str],
        cwd: str,
        limits: Any,
        logs: LogCollector,
        output_dir: Path,
    ) -> tuple[int | None, RunOutcome | None, float, int]:
        try:
            proc = subprocess.Popen(
                launcher_argv(argv, limits),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            raise SandboxError(f"cannot start the process sandbox's launcher: {exc.strerror or exc}") from None
        started = time.monotonic()
        assert proc.stdout is not None
        reader = threading.Thread(target=_pump, args=(proc.stdout, logs), name=f"proc-{proc.pid}-log", daemon=True)
        reader.start()
        status: list[tuple[int, int]] = []
        exited = threading.Event()

        def _wait() -> None:
            try:
                _pid, raw, usage = os.wait4(proc.pid, 0)
                status.append((raw, int(usage.ru_maxrss)))
            except ChildProcessError:  # reaped elsewhere
                status.append((0, 0))
            finally:
                exited.set()

        waiter = threading.Thread(target=_wait, name=f"proc-{proc.pid}-wait", daemon=True)
        waiter.start()
        killed_for: RunOutcome | None = None
        cap_bytes = int(limits.output_mb) * 1024 * 1024
        try:
            deadline = started + float(limits.time_s)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    killed_for = RunOutcome.TIMED_OUT
                    break
                if exited.wait(min(remaining, self.poll_interval_s)):
                    break
                if _tree_size(output_dir) > cap_bytes:
                    killed_for = RunOutcome.OUTPUT_LIMIT
                    break
        finally:
            with deferred_signals():
                _kill_session(proc.pid)
                exited.wait(10.0)
                reader.join(timeout=2.0)
                with contextlib.suppress(OSError):
                    proc.stdout.close()
        duration = time.monotonic() - started
        raw, maxrss = status[0] if status else (0, 0)
        proc.returncode = os.waitstatus_to_exitcode(raw) if status else None
        code = proc.returncode
        if sys.platform == "darwin":  # ru_maxrss is in bytes there, KiB on Linux
            maxrss //= 1024
        return code, killed_for, duration, maxrss

    @staticmethod
    def _outcome(
        code: int | None, killed_for: RunOutcome | None, log_text: str, output_bytes: int, biggest: int, cap: int
    ) -> RunOutcome:
        if killed_for is not None:
            return killed_for
        if code not in (0, None):
            end = log_text[-8192:]
            if code == -signal.SIGKILL or _OOM_PATTERNS.search(end):
                return RunOutcome.OUT_OF_MEMORY
        if output_bytes > cap or biggest >= cap:
            return RunOutcome.OUTPUT_LIMIT
        return RunOutcome.EXITED


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


def launcher_argv(argv: list[str], limits: Any) -> list[str]:
    """The argv that starts ``argv`` under the rlimits of ``limits`` (see the module docs for which)."""
    memory = int(limits.memory_mb) * 1024 * 1024
    spec: dict[str, Any] = {
        "limits": [
            ["RLIMIT_DATA", memory],
            ["RLIMIT_AS", 4 * memory + (1 << 30)],
            ["RLIMIT_FSIZE", int(limits.output_mb) * 1024 * 1024],
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
    members: list[int] = []
    proc = Path("/proc")
    if not proc.is_dir():
        return members
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == sid:  # fields after ")": state ppid pgrp session ...
            members.append(int(entry.name))
    return members


def _kill_session(pid: int) -> None:
    """SIGKILL the run's process group and every process still in its session (leader included)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    for member in _session_members(pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(member, signal.SIGKILL)


def _pump(stream: IO[bytes], logs: LogCollector) -> None:
    try:
        while chunk := stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536):
            logs.feed(chunk)
    except (OSError, ValueError) as exc:  # closed under us at cleanup
        logger.debug("process log stream ended: %s", exc)


def _tree_size(folder: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def _sanitize_output(folder: Path) -> tuple[int, int]:
    """Remove links and special files from the output folder; returns (total bytes, biggest file's bytes)."""
    total = biggest = 0
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(root, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                continue
            if not stat.S_ISREG(st.st_mode):
                logger.warning("removing %s from the output folder: not a regular file or folder", path)
                with contextlib.suppress(OSError):
                    os.unlink(path)
                continue
            total += st.st_size
            biggest = max(biggest, st.st_size)
    return total, biggest
