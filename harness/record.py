"""The run record: what evaluating one submission in one phase produced, from the sandbox to the store.

A :class:`RunRecord` is made by :func:`harness.pipeline.evaluate_opened` (or by the scheduler for a submission
refused at the door), crosses thread, process and Dask boundaries as it is (it pickles), and is written to the store
as it is (:meth:`harness.store.Store.finish_run`). The store's read view of a run joined with its submission and
team is :class:`harness.store.ScoredRun`.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.notebooks import EXECUTED_NOTEBOOK
from harness.status import Status

__all__ = ["EXECUTED_NOTEBOOK", "LOG_FILE", "RunRecord"]
#: File name of the run's capped log in its artifacts folder.
LOG_FILE = "log.txt"


@dataclass
class RunRecord:
    """The outcome of evaluating one submission in one phase (picklable; no store involved).

    Attributes:
        task_id: the task's id.
        phase: ``validation`` or ``test``.
        team: the team name as given by the caller or the submission's team.yaml (may be ``""``).
        content_hash: sha256 of the normalised submission.
        kind: ``notebook`` or ``script`` (``unknown`` for a submission refused at the door).
        status: a :class:`~harness.status.Status` (one of :data:`~harness.status.FINAL_STATUSES` once finished).
        reason: one line a team can act on (``""`` on success).
        problems: every output problem found (invalid_output), one sentence each.
        scores: split -> metric -> value (empty unless succeeded).
        started_at / finished_at: UTC timestamps of the whole evaluation.
        duration_s: wall-clock seconds of the sandboxed command.
        peak_memory_mb: peak memory of the sandbox in MiB (None if unknown).
        exit_code: the command's exit code (None if killed).
        limits: the limits applied (time_s, memory_mb, ...), for resource-use reports.
        artifacts_dir: folder holding log.txt, executed.ipynb (notebooks), output/ (predictions).
        provenance: submission hash, spec hash, evaluator file, image id, harness version, sandbox.
        notes: non-fatal remarks (nbformat upgraded, kernel name replaced, ...).
    """

    task_id: str
    phase: str
    team: str
    content_hash: str
    kind: str
    status: Status
    reason: str = ""
    problems: list[str] = field(default_factory=list)
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    started_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    finished_at: dt.datetime | None = None
    duration_s: float | None = None
    peak_memory_mb: float | None = None
    exit_code: int | None = None
    limits: dict[str, float] = field(default_factory=dict)
    artifacts_dir: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.status = Status(self.status)  # text from a caller or a store becomes the enum; unknown text raises

    @property
    def succeeded(self) -> bool:
        """True when the run was scored."""
        return self.status is Status.SUCCEEDED

    @property
    def log_path(self) -> Path | None:
        """The run's capped log, if it was written."""
        path = Path(self.artifacts_dir) / LOG_FILE
        return path if self.artifacts_dir and path.is_file() else None

    @property
    def notebook_path(self) -> Path | None:
        """The executed notebook (outputs capped), if there is one."""
        path = Path(self.artifacts_dir) / EXECUTED_NOTEBOOK
        return path if self.artifacts_dir and path.is_file() else None

    def to_json(self) -> str:
        """The record as JSON (timestamps ISO 8601, the status as its text)."""
        return json.dumps(asdict(self), default=str, indent=2, sort_keys=True)
