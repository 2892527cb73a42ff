"""Running an evaluator in its own process: time and memory limits, killing its process group, warm standbys.

:func:`score_outputs` runs :func:`~harness.scoring.evaluator.evaluate_outputs` in a separate Python process with
the evaluator's time limit and an address-space limit, kills its whole process group on expiry and reaps it, and
re-raises :class:`~harness.errors.InvalidOutputError` or :class:`~harness.errors.EvaluatorError` in the caller.
The child reads a pickled request its parent wrote and answers in JSON: nothing an evaluator makes is unpickled by
the harness. An :class:`EvaluatorPool` keeps such processes started ahead of time for a batch. POSIX only (process
groups, ``resource`` limits).
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
from harness.scoring.evaluator import evaluate_outputs
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
    """Entry point of a warm evaluator process: ``python -c '...' WORK_DIR MEMORY_MB``.

    It applies the memory limit, imports what evaluators use (pandas, numpy, scikit-learn's metrics), then waits
    for one line on stdin and serves ``WORK_DIR/request.pkl`` into ``WORK_DIR/result.json``. One request per
    process: nothing an evaluator leaves in memory reaches the next run.
    """
    work, memory_mb = Path(sys.argv[1]), int(sys.argv[2])
    _limit_memory(memory_mb)
    with contextlib.suppress(ImportError, MemoryError):
        import sklearn.metrics  # noqa: F401  (warm-up only)
    if not sys.stdin.readline():
        return  # the harness closed the pool without a request
    _serve(str(work / "request.pkl"), str(work / "result.json"), memory_mb)


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


# -- warm evaluator processes ----------------------------------------------------------------------------------
class _Standby:
    """An evaluator process started ahead of time: imports done, waiting for one request (see _standby_main)."""

    def __init__(self, memory_mb: int, env: dict[str, str]) -> None:
        self.memory_mb = memory_mb
        self.work = Path(tempfile.mkdtemp(prefix="harness-score-"))
        self.log = self.work / "evaluator.log"
        with self.log.open("wb") as log_fh:
            self.proc: subprocess.Popen[bytes] = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    f"from {_ENTRY_MODULE} import _standby_main; _standby_main()",
                    str(self.work),
                    str(memory_mb),
                ],
                stdin=subprocess.PIPE,
                stdout=log_fh,
                stderr=subprocess.STDOUT,
                cwd=self.work,
                env=env,
                start_new_session=True,
            )

    def discard(self) -> None:
        _kill_group(self.proc)
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        shutil.rmtree(self.work, ignore_errors=True)


class EvaluatorPool:
    """Evaluator processes started ahead of time, each taken by one :func:`score_outputs` call (``pool=``).

    Starting Python and importing pandas and scikit-learn costs about a second per scoring; a batch of thousands
    of submissions pays it in the background instead. The pool holds up to ``size`` idle standby processes: each
    has applied its address-space limit, imported what evaluators use and waits for one request. Each serves
    exactly one scoring, under the same time and memory limits as a cold process, and is gone after it: nothing an
    evaluator leaves in memory reaches the next run.

    The pool starts empty (the memory limit is known only at the first scoring). Each :func:`score_outputs` call
    given the pool takes an idle standby of its ``evaluator.memory_mb`` if there is one, and otherwise starts a cold
    process as it does without a pool; then it tops the pool up to ``size`` standbys of that limit, discarding
    those of another limit. A standby that died while waiting (the OOM killer, a signal) is discarded and replaced
    at the next scoring, which itself runs cold.

    One pool may be shared by the threads of one process (a batch's local workers): taking a standby and closing
    hold a lock. It cannot cross a process boundary (it holds processes and a lock, and is not picklable), so Dask
    workers score cold.

    :meth:`close` kills and reaps every idle standby and removes its work folder; a standby already taken belongs to
    its scoring, which kills it when it ends. A closed pool starts nothing: :func:`score_outputs` given it scores
    cold. Use the pool as a context manager (``with EvaluatorPool(workers) as pool:``) so it is closed however the
    block ends.

    Args:
        size: how many idle standbys to keep ready (at least 1; usually the number of runs scored at once).
    """

    def __init__(self, size: int = 1) -> None:
        self.size = max(1, size)
        self._idle: list[_Standby] = []
        self._lock = threading.Lock()
        self._closed = False

    def __enter__(self) -> EvaluatorPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._idle)} idle"
        return f"EvaluatorPool(size={self.size}, {state})"

    def _take(self, memory_mb: int, env: dict[str, str]) -> _Standby | None:
        """An idle live standby of ``memory_mb`` (now the caller's to serve and kill) or ``None``; tops up the pool."""
        with self._lock:
            if self._closed:
                return None
            match = next((s for s in self._idle if s.memory_mb == memory_mb and s.proc.poll() is None), None)
            if match is not None:
                self._idle.remove(match)
            # Standbys of another memory limit, and those that died waiting (the OOM killer, a signal), go: a dead
            # one left here would hold a slot forever and every later scoring would start cold.
            for other in [s for s in self._idle if s.memory_mb != memory_mb or s.proc.poll() is not None]:
                self._idle.remove(other)
                other.discard()
            while len(self._idle) < self.size:  # ready for the next runs
                self._idle.append(_Standby(memory_mb, env))
            return match

    def close(self) -> None:
        """Kill and reap every idle standby and remove its work folder. Idempotent; the pool starts nothing after."""
        with self._lock:
            self._closed = True
            for standby in self._idle:
                standby.discard()
            self._idle.clear()


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
        pool: take a process started ahead of time from this pool (see :class:`EvaluatorPool`); ``None`` (the
            default), or a pool without a standby of this memory limit, starts a cold process.

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
    work = standby.work if standby is not None else Path(tempfile.mkdtemp(prefix="harness-score-"))
    try:
        request, result, log = work / "request.pkl", work / "result.json", work / "evaluator.log"
        request.write_bytes(pickle.dumps((spec, Path(output_dir).resolve(), phase)))
        started = time.monotonic()
        if standby is not None:
            proc = standby.proc
            assert proc.stdin is not None
            try:
                proc.stdin.write(b"go\n")
                proc.stdin.close()
            except OSError:
                pass  # it died while waiting: reported below as an evaluator without a result
        else:
            with log.open("wb") as log_fh:
                proc = subprocess.Popen(
                    [
                        sys.executable,
                        "-c",
                        f"from {_ENTRY_MODULE} import _child_main; _child_main()",
                        str(request),
                        str(result),
                        str(spec.evaluator.memory_mb),
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log_fh,
                    stderr=subprocess.STDOUT,
                    cwd=work,
                    env=env,
                    start_new_session=True,
                )
        logger.debug("evaluator process %d started for %s (%s)", proc.pid, spec.id, phase)
        try:
            returncode = proc.wait(timeout=time_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise EvaluatorError(
                f"the evaluator did not finish within its time limit of {time_s:g} s (evaluator.time_s in "
                "task.yaml) and was stopped",
                _tail(log),
            ) from None
        except BaseException:
            _kill_group(proc)
            raise
        finally:
            # Children the evaluator left behind die with its process group.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        duration = time.monotonic() - started
        logger.debug("evaluator process %d ended with %s after %.2f s", proc.pid, returncode, duration)
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
