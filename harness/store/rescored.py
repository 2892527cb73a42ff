"""Store operations of rescoring and verifying: one run by its id, and a rescored run replacing the active one.

:func:`record_rescored` writes a new run from a run's kept predictions scored again (``harness rescore``) in **one
transaction**: the old run stays in the history, inactive, with its scores and provenance; the new one, whose
``provenance["rescored_from"]`` names the old run, becomes the submission's active run. Functions take a
:class:`~harness.store.results.Store`; :mod:`harness.store.results` is not changed by them.
"""

from __future__ import annotations

from sqlalchemy import select, update

from harness.errors import StoreError
from harness.record import RunRecord
from harness.status import FINAL_STATUSES, Status
from harness.store.results import ScoredRun, Store
from harness.store.schema import RunRow, ScoreRow, SubmissionRow, utcnow

__all__ = ["record_rescored", "run_by_id"]


def run_by_id(store: Store, run_id: int) -> ScoredRun | None:
    """One run (active or not) joined with its submission, team and scores, or ``None`` when there is no such run."""
    with store.session() as sess:
        found = sess.execute(
            select(SubmissionRow.task_id, RunRow.phase)
            .join(SubmissionRow, RunRow.submission_id == SubmissionRow.id)
            .where(RunRow.id == run_id)
        ).first()
    if found is None:
        return None
    task_id, phase = found
    return next((r for r in store.runs(task_id, phase=phase, active_only=False) if r.run_id == run_id), None)


def record_rescored(store: Store, old_run_id: int, record: RunRecord) -> int:
    """Write a rescored run and make it active in place of ``old_run_id``, in one transaction.

    The new row takes the record's status, reason, problems, provenance (``rescored_from`` set to the old run) and
    scores; its timings, resource use, exit code and artifacts folder are the old run's (the team's code ran once,
    then). The old run keeps everything it had and becomes inactive history.

    Args:
        old_run_id: the run whose kept predictions were scored again; it must still be its submission's active run.
        record: the outcome of scoring again (status ``succeeded``, ``invalid_output`` or ``evaluator_error``).

    Returns:
        The new run's id.

    Raises:
        StoreError: no such run, it is no longer active (another run or rescore replaced it meanwhile), a status
            outside :data:`~harness.status.FINAL_STATUSES`, or ``succeeded`` without scores.
    """
    if record.status not in FINAL_STATUSES:
        raise StoreError(f"cannot record a rescored run with status {record.status.value!r}")
    if record.status is Status.SUCCEEDED and not record.scores:
        raise StoreError(f"a rescore of run {old_run_id} cannot succeed without scores")
    with store.session() as sess:
        old = sess.get(RunRow, old_run_id)
        if old is None:
            raise StoreError(f"no run {old_run_id} in the store")
        if not old.active:
            raise StoreError(
                f"run {old_run_id} is no longer its submission's active run (a later run or rescore replaced it); "
                "rescore the active one"
            )
        sess.execute(update(RunRow).where(RunRow.id == old_run_id).values(active=False))
        sess.flush()
        provenance = {**dict(old.provenance or {}), **record.provenance, "rescored_from": old_run_id}
        new = RunRow(
            submission_id=old.submission_id,
            phase=old.phase,
            status=record.status.value,
            reason=record.reason,
            problems=list(record.problems),
            active=True,
            started_at=old.started_at,
            finished_at=record.finished_at or utcnow(),
            duration_s=old.duration_s,
            peak_memory_mb=old.peak_memory_mb,
            exit_code=old.exit_code,
            artifacts_dir=old.artifacts_dir,
            provenance=provenance,
            coordinator=store.owner,
        )
        sess.add(new)
        sess.flush()
        for split, metrics in record.scores.items():
            for metric, value in metrics.items():
                sess.add(ScoreRow(run_id=new.id, split=split, metric=metric, value=float(value)))
        return new.id
