"""Scoring many kept output folders again, in a few evaluator processes: what ``harness rescore`` uses.

:func:`score_many` splits the folders into one chunk per worker; each chunk is scored in one Python process of its
own under the evaluator's address-space limit (``evaluator.memory_mb``), which imports the evaluator and reads the
phase's reference **once** and then scores each folder with :meth:`~harness.scoring.Evaluator.evaluate` (the same
validation, alignment and metric checks as at judging time). Starting a process and reading the reference per run
would cost more than scoring itself. The process writes one JSON line per folder as it goes; the harness never
unpickles anything it made.

When a chunk's process exceeds ``evaluator.time_s`` per folder, dies or cannot start, the folders it had not
answered are scored one by one with :func:`~harness.scoring.score_outputs` (one process each, exact limits), so a
bad folder costs only itself. POSIX only (process groups, ``resource`` limits).
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import traceback
from pathlib import Path
from typing import Any, Final

from harness.errors import EvaluatorError, HarnessError, InvalidOutputError
from harness.scoring.process import (
    _ERROR_CLASSES,
    _evaluator_env,
    _kill_group,
    _limit_memory,
    score_outputs,
    spawn_evaluator,
)
from harness.spec import TaskSpec

__all__ = ["Scored", "score_many"]

_ENTRY: Final = "harness.scoring.batch"
#: Seconds a chunk's process may take to start and read the reference, on top of ``time_s`` per folder.
_START_S: Final = 60.0

#: One folder's outcome: ``{split: {metric: value}}``, or the team's or the author's error.
Scored = dict[str, dict[str, float]] | InvalidOutputError | EvaluatorError


def _chunk_main() -> None:
    """Entry point of a chunk's process: ``python -c '...' REQUEST RESULTS MEMORY_MB``."""
    request_path, results_path, memory_mb = sys.argv[1], sys.argv[2], int(sys.argv[3])
    _limit_memory(memory_mb)
    from harness.scoring.evaluator import load_evaluator
    from harness.scoring.kept import load_phase_reference

    with open(request_path, "rb") as fh:
        spec, folders, phase = pickle.load(fh)  # written by our parent a moment ago
    with open(results_path, "a", encoding="utf-8") as out:
        try:
            cls = load_evaluator(spec)
            reference = load_phase_reference(spec, phase)
        except HarnessError as exc:
            name = type(exc).__name__ if type(exc).__name__ in _ERROR_CLASSES else "EvaluatorError"
            args = list(exc.args) if name == type(exc).__name__ else [str(exc)]
            line = {"ok": False, "error": name, "args": args}
            for _folder in folders:
                out.write(json.dumps(line) + "\n")
            return
        for folder in folders:
            outcome: dict[str, Any]
            try:
                outcome = {"ok": True, "scores": cls(spec, phase, Path(folder)).evaluate(reference)}
            except MemoryError:
                outcome = {"ok": False, "error": "EvaluatorError", "args": ["the evaluator ran out of memory"]}
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
            out.write(json.dumps(outcome) + "\n")
            out.flush()


def _decode(outcome: dict[str, Any]) -> Scored:
    if outcome["ok"]:
        return {split: {m: float(v) for m, v in metrics.items()} for split, metrics in outcome["scores"].items()}
    error = _ERROR_CLASSES.get(outcome["error"], EvaluatorError)(*outcome["args"])
    if isinstance(error, InvalidOutputError | EvaluatorError):
        return error
    return EvaluatorError(str(error))


def _score_chunk(spec: TaskSpec, folders: list[Path], phase: str) -> list[Scored]:
    """Score a chunk in one process; folders it did not answer are scored one by one (see the module doc)."""
    work = Path(tempfile.mkdtemp(prefix="harness-rescore-"))
    answered: list[Scored] = []
    try:
        request, results = work / "request.pkl", work / "results.jsonl"
        request.write_bytes(pickle.dumps((spec, [str(Path(f).resolve()) for f in folders], phase)))
        results.touch()
        proc = spawn_evaluator(
            f"{_ENTRY}:_chunk_main", [request, results, spec.evaluator.memory_mb], work, _evaluator_env()
        )
        try:
            proc.wait(timeout=_START_S + spec.evaluator.time_s * len(folders))
        except subprocess.TimeoutExpired:
            _kill_group(proc)
        finally:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        for line in results.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(ValueError, KeyError, TypeError):
                answered.append(_decode(json.loads(line)))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    answered = answered[: len(folders)]
    for folder in folders[len(answered) :]:  # what the chunk's process left: one process each, exact limits
        try:
            answered.append(score_outputs(spec, folder, phase))
        except (InvalidOutputError, EvaluatorError) as exc:
            answered.append(exc)
    return answered


def score_many(spec: TaskSpec, folders: list[Path], phase: str, *, workers: int | None = None) -> list[Scored]:
    """Validate and score many output folders again (kept predictions), in ``workers`` evaluator processes.

    Args:
        spec: the task spec (the evaluator and reference as they are now).
        folders: output folders (each holding ``spec.predictions.file`` in predictions mode).
        phase: the phase whose reference scores them.
        workers: processes at once (default: the number of cores, at most one per folder).

    Returns:
        One outcome per folder, in order: ``{split: {metric: value}}`` as :func:`~harness.scoring.score_outputs`
        returns, or the :class:`~harness.errors.InvalidOutputError` (the predictions no longer validate) or
        :class:`~harness.errors.EvaluatorError` (the evaluator failed) it would raise.

    Raises:
        ValueError: ``phase`` is not a phase of the spec.
    """
    if phase not in spec.data.references:
        raise ValueError(f"unknown phase {phase!r}; expected one of {list(spec.data.references)}")
    folders = [Path(f) for f in folders]
    if not folders:
        return []
    n = max(1, min(workers or os.cpu_count() or 1, len(folders)))
    chunks = [folders[i::n] for i in range(n)]
    outcomes: list[list[Scored]] = [[] for _ in chunks]

    def work(index: int) -> None:
        outcomes[index] = _score_chunk(spec, chunks[index], phase)

    threads = [threading.Thread(target=work, args=(i,), name=f"harness-rescore-{i}") for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    merged: list[Scored] = [EvaluatorError("not scored")] * len(folders)
    for i, chunk_outcomes in enumerate(outcomes):
        for j, outcome in enumerate(chunk_outcomes):
            merged[i + j * n] = outcome
    return merged
