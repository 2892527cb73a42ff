"""Running an evaluator in its own process: time and memory limits, killing its process group, warm standbys.

:func:`score_outputs` runs :func:`~harness.scoring.evaluator.evaluate_outputs` in a separate Python process with
the evaluator's time limit and an address-space limit, kills its whole process group on expiry and reaps it, and
re-raises :class:`~harness.errors.InvalidOutputError` or :class:`~harness.errors.EvaluatorError` in the caller.
The child reads a pickled request its parent wrote and answers in JSON: nothing an evaluator makes is unpickled by
the harness. An :class:`EvaluatorPool` keeps warm fork servers for a batch: long-lived processes that imported
pandas and scikit-learn once, under the same limits, and fork one fresh child per scoring (so each scoring is still
its own process, its own session, killed as a group; nothing it leaves in memory reaches the next one). POSIX only
(``fork``, process groups, ``resource`` limits).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import shutil
import signal
import site
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Final

from harness.errors import EvaluatorError, HarnessError, InvalidOutputError, SpecError
from harness.spec import TaskSpec

__all__ = ["EvaluatorPool", "score_outputs"]

logger = logging.getLogger(__name__)

#: The module whose ``_child_main`` / ``_standby_main`` an evaluator process runs (``python -c "from ... import"``).
_ENTRY_MODULE: Final = "harness.scoring.process"
_LOG_TAIL_BYTES = 4000

_ERROR_CLASSES: Final[dict[str, type[HarnessError]]] = {
    cls.__name__: cls for cls in (InvalidOutputError, EvaluatorError, SpecError)
}


def _child_main() -> None:
    """Entry point of a cold evaluator process: ``python -c '...' REQUEST RESULT MEMORY_MB``."""
    request_path, result_path, memory_mb = sys.argv[1], sys.argv[2], int(sys.argv[3])
    _limit_memory(memory_mb)
    _serve(request_path, result_path, memory_mb)


def _standby_main() -> None:
    """Entry point of the warm evaluator process (a fork server): ``python -c '...' MEMORY_MB``.

    It applies the memory limit, imports what evaluators use (pandas, numpy, scikit-learn's metrics), then serves
    requests, any number at once: a line ``ID WORK`` on stdin forks a child that starts its own session and serves
    ``WORK/request.pkl`` into ``WORK/result.json`` (its output into ``WORK/evaluator.log``); the server answers
    ``pid ID PID`` on stdout, and ``exit ID STATUS`` once it reaped the child (a negative status: killed by that
    signal). The server itself never runs an evaluator: each scoring is a fresh child process, and whatever it
    leaves in memory dies with it. The server ends at the end of stdin (children still running are its caller's
    to kill: each is the leader of its own process group).
    """
    import select

    memory_mb = int(sys.argv[1])
    _limit_memory(memory_mb)
    _warm_up()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)
    children: dict[int, str] = {}  # pid -> request id
    buffer, stdin_open = b"", True

    def answer(text: str) -> None:
        os.write(1, text.encode("ascii"))

    while stdin_open or children:
        ready, _, _ = select.select([0, wake_r] if stdin_open else [wake_r], [], [], 1.0)
        if wake_r in ready:
            os.read(wake_r, 4096)
        while children:  # reap every child that ended
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            if pid in children:
                answer(f"exit {children.pop(pid)} {os.waitstatus_to_exitcode(status)}\n")
        if 0 not in ready:
            continue
        chunk = os.read(0, 65536)
        if not chunk:
            stdin_open = False
            continue
        buffer += chunk
        while b"\n" in buffer:
            line, _, buffer = buffer.partition(b"\n")
            request_id, _, work = line.decode("utf-8", "surrogateescape").strip().partition(" ")
            if not work:
                continue
            pid = os.fork()
            if pid == 0:
                _forked_child(work, memory_mb, (wake_r, wake_w))
            children[pid] = request_id
            answer(f"pid {request_id} {pid}\n")


def _warm_up() -> None:
    """In the fork server, before it forks: import what every scoring imports, so the children inherit it.

    That is the evaluator's side of the harness (pandas, numpy), pyarrow's CSV reader and pandas bridge (the
    predictions' fast path), scikit-learn's metrics, and what scikit-learn loads on the first pandas object it
    checks (narwhals' pandas backend, its plugins' entry points): about 0.03 s of CPU a scoring otherwise paid in
    its own child. Only imports and one metric of two one-row constants run here, never an evaluator or team data;
    a failure (a package missing, the memory limit) leaves the rest to the children, as in a cold process.
    """
    with contextlib.suppress(ImportError, MemoryError):
        import harness.scoring.evaluator  # noqa: F401
    with contextlib.suppress(ImportError, MemoryError):
        import pyarrow.csv
        import pyarrow.pandas_compat  # noqa: F401
    with contextlib.suppress(Exception):
        import pandas as pd
        import sklearn.metrics

        sklearn.metrics.mean_absolute_error(pd.Series([0.0]), pd.Series([0.0]))


def _forked_child(work: str, memory_mb: int, close_fds: tuple[int, int]) -> None:
    """In a child of the fork server: a session of its own, output into the work folder, one scoring; never returns."""
    code = 1
    try:
        os.setsid()
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        for fd in close_fds:
            os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        log = os.open(os.path.join(work, "evaluator.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.chdir(work)
        _serve(os.path.join(work, "request.pkl"), os.path.join(work, "result.json"), memory_mb)
        code = 0
    finally:
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _limit_memory(memory_mb: int) -> None:
    import resource

    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _serve(request_path: str, result_path: str, memory_mb: int) -> None:
    """Read the pickled ``(spec, output_dir, phase)`` our parent wrote, run :func:`evaluate_outputs` and write the
    outcome as JSON (never pickle: nothing the evaluator makes is unpickled by the harness)."""
    outcome: dict[str, Any]
    try:
        with open(request_path, "rb") as fh:
            spec, output_dir, phase = pickle.load(fh)  # written by our parent a moment ago
        from harness.scoring.evaluator import evaluate_outputs  # here, not at the top: the coordinator needs none

        outcome = {"ok": True, "scores": evaluate_outputs(spec, output_dir, phase)}
    except MemoryError:
        outcome = {
            "ok": False,
            "error": "EvaluatorError",
            "args": [
                f"the evaluator ran out of memory (limit {memory_mb} MiB, evaluator.memory_mb in task.yaml)",
                traceback.format_exc(),
            ],
        }
    except HarnessError as exc:
        name = type(exc).__name__ if type(exc).__name__ in _ERROR_CLASSES else "EvaluatorError"
        args = list(exc.args) if name == type(exc).__name__ else [str(exc), traceback.format_exc()]
        outcome = {"ok": False, "error": name, "args": args}
    except BaseException as exc:
        outcome = {
            "ok": False,
            "error": "EvaluatorError",
            "args": [f"the evaluator failed: {type(exc).__name__}: {exc}", traceback.format_exc()],
        }
    tmp = result_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(outcome, fh)
    os.replace(tmp, result_path)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the child's whole process group and reap the child (no zombie left)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        proc.wait()


def _tail(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(max(0, path.stat().st_size - _LOG_TAIL_BYTES))
            return fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


# -- the warm evaluator process ---------------------------------------------------------------------------------
class _Ticket:
    """One scoring asked of a :class:`_Standby`: the child's pid, then its exit status, as the server answers."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self.status: int | None = None
        self.lost = False  # the server ended before answering
        self.changed = threading.Condition()

    def wait(self, what: str, timeout_s: float) -> bool:
        """Wait until ``pid`` or ``status`` (``what``) is known or the server is lost; False at the timeout."""
        with self.changed:
            return self.changed.wait_for(lambda: getattr(self, what) is not None or self.lost, timeout=timeout_s)


class _Standby:
    """The warm evaluator process (see :func:`_standby_main`): imports done, forking one child per scoring; shared
    by every thread of the pool. A reader thread hands the server's answers to the tickets waiting for them."""

    def __init__(self, memory_mb: int, env: dict[str, str]) -> None:
        self.memory_mb = memory_mb
        self.work = Path(tempfile.mkdtemp(prefix="harness-score-"))
        with (self.work / "server.log").open("wb") as log_fh:
            self.proc: subprocess.Popen[bytes] = subprocess.Popen(
                [sys.executable, "-c", f"from {_ENTRY_MODULE} import _standby_main; _standby_main()", str(memory_mb)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log_fh,
                cwd=self.work,
                env=env,
                start_new_session=True,
            )
        self._tickets: dict[str, _Ticket] = {}
        self._lock = threading.Lock()
        self._count = 0
        self._reader = threading.Thread(target=self._read, name=f"evaluator-server-{self.proc.pid}", daemon=True)
        self._reader.start()

    def alive(self) -> bool:
        return self.proc.poll() is None and self._reader.is_alive()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            what, request_id, value = [*raw.decode("ascii", errors="replace").split(), "", "", ""][:3]
            with self._lock:
                ticket = self._tickets.get(request_id)
                if ticket is not None and what == "exit":
                    del self._tickets[request_id]
            if ticket is None or what not in {"pid", "exit"} or not value.lstrip("-").isdigit():
                continue
            with ticket.changed:
                setattr(ticket, "pid" if what == "pid" else "status", int(value))
                ticket.changed.notify_all()
        with self._lock:  # the server is gone: nobody waits for an answer that cannot come
            lost, self._tickets = list(self._tickets.values()), {}
        for ticket in lost:
            with ticket.changed:
                ticket.lost = True
                ticket.changed.notify_all()

    def submit(self, work: Path) -> _Ticket | None:
        """Ask for one scoring of ``work``; ``None`` when the server is gone."""
        ticket = _Ticket()
        with self._lock:
            self._count += 1
            request_id = str(self._count)
            self._tickets[request_id] = ticket
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(f"{request_id} {work}\n".encode("utf-8", "surrogateescape"))
                self.proc.stdin.flush()
            except (OSError, ValueError):
                del self._tickets[request_id]
                return None
        return ticket

    def discard(self) -> None:
        """Kill and reap the server (its children in flight are their scorings' to kill) and remove its folder."""
        _kill_group(self.proc)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        self._reader.join(timeout=5)
        shutil.rmtree(self.work, ignore_errors=True)


class EvaluatorPool:
    """A warm evaluator process shared by the :func:`score_outputs` calls given the pool (``pool=``).

    Starting Python and importing pandas and scikit-learn costs about 1.5 s of CPU per scoring; the pool pays it
    once per batch. Its warm process has applied the address-space limit ``evaluator.memory_mb`` and imported what
    evaluators use, then forks one fresh child per scoring, any number at once (:func:`_standby_main`). Each child
    gets a session of its own and the same time and memory limits as a cold process, and its whole process group
    is killed when it ends or runs out of time: nothing an evaluator leaves in memory reaches the next run, and no
    evaluator code runs in the warm process itself.

    The warm process is started by :meth:`start` (a batch knows the limit before its first scoring), else by the
    first scoring given the pool. A scoring of another memory limit replaces it; one that finds it dead (the OOM
    killer, a signal) starts a new one.

    One pool may be shared by the threads of one process (a batch's local workers). It cannot cross a process
    boundary (it holds a process and locks, and is not picklable), so Dask workers score cold.

    :meth:`close` kills and reaps the warm process and removes its work folder; scorings in flight then fail as an
    evaluator without a result. A closed pool starts nothing: :func:`score_outputs` given it scores cold. Use the
    pool as a context manager (``with EvaluatorPool(workers) as pool:``) so it is closed however the block ends.

    Args:
        size: how many scorings are expected at once (kept for callers; one warm process serves them all).
    """

    def __init__(self, size: int = 1) -> None:
        self.size = max(1, size)
        self._server: _Standby | None = None
        self._lock = threading.Lock()
        self._closed = False

    def __enter__(self) -> EvaluatorPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("warm" if self._server is not None else "empty")
        return f"EvaluatorPool(size={self.size}, {state})"

    def start(self, memory_mb: int) -> None:
        """Start the warm process for scorings of ``memory_mb`` MiB now (in the background; it imports for ~1 s)."""
        self._take(memory_mb, _evaluator_env())

    def _take(self, memory_mb: int, env: dict[str, str]) -> _Standby | None:
        """The live warm process of ``memory_mb`` (started when missing), or ``None`` when the pool is closed."""
        with self._lock:
            if self._closed:
                return None
            server = self._server
            if server is not None and (server.memory_mb != memory_mb or not server.alive()):
                server.discard()
                server = None
            if server is None:
                server = self._server = _Standby(memory_mb, env)
            return server

    def close(self) -> None:
        """Kill and reap the warm process and remove its work folder. Idempotent; the pool starts nothing after."""
        with self._lock:
            self._closed = True
            if self._server is not None:
                self._server.discard()
                self._server = None


def _evaluator_env() -> dict[str, str]:
    """The child's environment: this one, with the folder holding ``harness/`` first on ``PYTHONPATH`` when the
    package comes from a source tree (an installed package is in the child's own site-packages already, which must
    not move ahead of the standard library), and one thread per BLAS pool."""
    package_root = str(Path(__file__).resolve().parents[2])  # the folder holding harness/
    env = dict(os.environ)
    installed = {str(Path(p).resolve()) for p in (*site.getsitepackages(), site.getusersitepackages())}
    if package_root not in installed:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, "1")  # keeps the address space of the BLAS thread pools small
    return env


def score_outputs(
    spec: TaskSpec, output_dir: Path, phase: str, *, pool: EvaluatorPool | None = None
) -> dict[str, dict[str, float]]:
    """Validate a run's outputs and score them, in a separate process with the evaluator's limits.

    The child process runs :meth:`Evaluator.evaluate` under an address-space limit of ``evaluator.memory_mb``
    MiB, in its own session. When it does not finish within ``evaluator.time_s`` seconds its whole process group
    is killed with SIGKILL and reaped. Its stdout and stderr go to a temporary file whose tail is kept in the
    error detail.

    Args:
        spec: the task spec.
        output_dir: the run's output folder (holding ``spec.predictions.file`` in predictions mode).
        phase: ``validation`` (scored against the public validation labels) or ``test`` (the hidden reference).
        pool: score in a child of this pool's warm process (see :class:`EvaluatorPool`); ``None`` (the default),
            or a closed pool, starts a cold process.

    Returns:
        ``{split: {metric: value}}``, e.g. ``{"public": {"mae": 21.3, ...}, "private": {...}}``; splits and
        metrics in the spec's order, every value a finite float.

    Raises:
        InvalidOutputError: the outputs do not match the spec (a team problem; ``problems`` say what to fix).
        EvaluatorError: the evaluator raised, ran out of memory, exceeded ``evaluator.time_s``, died, or returned
            malformed metrics (a task problem).
        ValueError: ``phase`` is not a phase of the spec.
    """
    if phase not in spec.data.references:
        raise ValueError(f"unknown phase {phase!r}; expected one of {list(spec.data.references)}")
    time_s = spec.evaluator.time_s
    env = _evaluator_env()
    standby = pool._take(spec.evaluator.memory_mb, env) if pool is not None else None
    work = Path(tempfile.mkdtemp(prefix="harness-score-"))
    try:
        request, result, log = work / "request.pkl", work / "result.json", work / "evaluator.log"
        request.write_bytes(pickle.dumps((spec, Path(output_dir).resolve(), phase)))
        returncode = None
        if standby is not None:
            returncode = _run_warm(standby, work, time_s, log)
        if returncode is None:  # no pool, no warm process of this limit, or it failed before forking
            returncode = _run_cold(spec, work, env, time_s)
        if not result.is_file():
            how = f"was killed by signal {-returncode}" if returncode < 0 else f"exited with code {returncode}"
            hint = " (SIGKILL: perhaps the machine's OOM killer)" if returncode == -signal.SIGKILL else ""
            raise EvaluatorError(f"the evaluator process {how}{hint} without a result", _tail(log))
        outcome = json.loads(result.read_text(encoding="utf-8"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if outcome["ok"]:
        return {split: {m: float(v) for m, v in metrics.items()} for split, metrics in outcome["scores"].items()}
    raise _ERROR_CLASSES[outcome["error"]](*outcome["args"])


def _time_limit_error(time_s: float, log: Path) -> EvaluatorError:
    return EvaluatorError(
        f"the evaluator did not finish within its time limit of {time_s:g} s (evaluator.time_s in task.yaml) and "
        "was stopped",
        _tail(log),
    )


def _kill_pgid(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _run_warm(standby: _Standby, work: Path, time_s: float, log: Path) -> int | None:
    """Score ``work`` in a child forked by the warm process; its exit status, or ``None`` when the warm process
    was gone before forking (the caller then scores cold).

    Raises:
        EvaluatorError: the child ran past ``time_s`` (it was killed with its process group).
    """
    ticket = standby.submit(work)
    if ticket is None or not ticket.wait("pid", 60.0) or ticket.pid is None:
        return None  # gone, or not forking within a minute (a machine swapping): a cold process then
    pid = ticket.pid  # the child's session and process group
    deadline = time.monotonic() + time_s
    try:
        if not ticket.wait("status", time_s):
            _kill_pgid(pid)
            ticket.wait("status", 10.0)  # the warm process reaps it
            raise _time_limit_error(time_s, log) from None
        if ticket.status is None:  # the server died meanwhile (another scoring's evaluator, the OOM killer)
            return _outlive_server(pid, deadline, work / "result.json", time_s, log)
    finally:
        _kill_pgid(pid)  # children the evaluator left behind die with its process group
    return ticket.status


def _outlive_server(pid: int, deadline: float, result: Path, time_s: float, log: Path) -> int:
    """Wait for a forked child whose server died: it runs on in its own session (re-parented, reaped by init),
    so its own scoring still ends with its own result, and an innocent scoring in flight is not failed with the
    server. Returns 0 when it wrote a result, else ``-SIGKILL`` (no result: reported as killed).

    Raises:
        EvaluatorError: it ran past the time limit (it is killed with its process group).
    """
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return 0 if result.is_file() else -signal.SIGKILL
        except PermissionError:  # the pid was reused by a process not ours: ours is gone
            return 0 if result.is_file() else -signal.SIGKILL
        if result.is_file():
            return 0
        time.sleep(0.05)
    _kill_pgid(pid)
    raise _time_limit_error(time_s, log)


def spawn_evaluator(entry: str, args: list[object], work: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start a fresh Python running ``entry`` (``"module:function"``) with ``args`` on its command line, in its own
    session (so its whole process group can be killed), in ``work``, its output to ``work/evaluator.log``.

    Shared by the cold scoring here and the rescoring chunks of :mod:`harness.scoring.batch`.
    """
    module, function = entry.split(":")
    with (work / "evaluator.log").open("wb") as log_fh:
        return subprocess.Popen(
            [sys.executable, "-c", f"from {module} import {function}; {function}()", *map(str, args)],
            stdin=subprocess.DEVNULL,
            stdout=log_fh,
            stderr=subprocess.STDOUT,
            cwd=work,
            env=env,
            start_new_session=True,
        )


def _run_cold(spec: TaskSpec, work: Path, env: dict[str, str], time_s: float) -> int:
    """Score ``work`` in a new Python process; its exit status.

    Raises:
        EvaluatorError: it ran past ``time_s`` (it was killed with its process group).
    """
    request, result, log = work / "request.pkl", work / "result.json", work / "evaluator.log"
    proc = spawn_evaluator(f"{_ENTRY_MODULE}:_child_main", [request, result, spec.evaluator.memory_mb], work, env)
    logger.debug("evaluator process %d started for %s", proc.pid, spec.id)
    try:
        return proc.wait(timeout=time_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise _time_limit_error(time_s, log) from None
    except BaseException:
        _kill_group(proc)
        raise
    finally:
        _kill_pgid(proc.pid)  # children the evaluator left behind die with its process group
