"""The results store: tasks, teams, submissions, runs and scores on SQLAlchemy.

A SQLite file by default (``HARNESS_HOME/results.sqlite``), any SQLAlchemy URL by ``--db`` or ``$HARNESS_DB_URL``
(PostgreSQL: ``postgresql+psycopg://user@host/db``). The store is the source of truth of a judging run:

* a run row is written as ``running`` *before* its sandbox starts, so a coordinator killed with SIGKILL leaves
  evidence; the next coordinator marks such rows ``interrupted`` (inactive history) and evaluates their
  submissions again;
* a run's outcome is written in **one transaction** (:meth:`Store.finish_run`): its status, reason, timings,
  provenance and scores, and the switch of the submission's *active* run. At most one run per
  (submission, phase) is active; a partial unique index enforces it, so a re-run replaces and never adds.
* only one coordinator per task writes at a time (:meth:`Store.acquire_lease`); a second one refuses with a
  message, unless the first one's process is gone.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import logging
import os
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    create_engine,
    delete,
    event,
    func,
    select,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from harness.errors import StoreError
from harness.procs import pid_alive
from harness.record import RunRecord
from harness.status import FINAL_STATUSES, STATUSES, Status
from harness.store.reading import ScoredRun, default_home, resolve_db_url, scored_runs, sqlite_runs
from harness.store.schema import (
    SCHEMA_VERSION,
    LeaseRow,
    RunRow,
    ScoreRow,
    SubmissionRow,
    TaskRow,
    TeamRow,
    aware,
    prepare_schema,
    sqlite_pragmas,
    utcnow,
)

__all__ = [
    "FINAL_STATUSES",
    "STATUSES",
    "NewSubmission",
    "Plan",
    "RunRow",
    "ScoredRun",
    "Status",
    "Store",
    "default_home",
    "resolve_db_url",
]

log = logging.getLogger(__name__)

#: A lease not renewed for this long (seconds) is considered abandoned even if its process looks alive.
LEASE_STALE_S = 300.0


class Plan(enum.StrEnum):
    """What a batch does with one entry (see :meth:`Store.plan_submission`)."""

    NEW = "new"  # no finished result in the phase yet (new content, or only interrupted runs): run it
    RETRY = "retry"  # its result was a harness_error (disk full, engine lost): the team gets a real run
    RERUN = "rerun"  # asked for: the new result replaces the active one
    UNCHANGED = "unchanged"  # finished before: not run again
    OVER_LIMIT = "over_limit"  # the team reached the daily limit: not recorded, a later day takes it

    @property
    def runs(self) -> bool:
        """Whether the entry gets a run in this batch."""
        return self in (Plan.NEW, Plan.RETRY, Plan.RERUN)


@dataclass(frozen=True)
class NewSubmission:
    """A submission as the coordinator found it, to be recorded (see :meth:`Store.plan_submission`).

    Attributes:
        content_hash: sha256 of the normalised content (or the fingerprint of an entry that could not be opened).
        source: the entry's path as given.
        kind: ``notebook``, ``script`` or ``unknown`` (not opened).
        entry: the entry point inside the submission (``""`` when not opened).
        n_files, n_bytes: size of the opened submission (files, bytes).
        notes: remarks from opening (or the rejection's reason).
        submitted_at: when it was submitted (UTC); default: when it is recorded.
    """

    content_hash: str
    source: str
    kind: str
    entry: str
    n_files: int = 0
    n_bytes: int = 0
    notes: tuple[str, ...] = ()
    submitted_at: dt.datetime | None = None


class Store:
    """Read and write judging results.

    Args:
        url: SQLAlchemy URL; see :func:`resolve_db_url`. A SQLite file's folder is created.

    Raises:
        StoreError: the URL is malformed, the database cannot be reached, or its tables cannot be created.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            if url.startswith("sqlite:///"):
                Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = create_engine(url, future=True)
            if self.engine.dialect.name == "sqlite":
                event.listen(self.engine, "connect", sqlite_pragmas)
            with self.engine.begin() as conn:
                found = prepare_schema(conn)
        except (SQLAlchemyError, ValueError, ImportError) as exc:
            raise StoreError(
                f"cannot open the results store at {self._safe_url()}: {exc}. Check --db / $HARNESS_DB_URL "
                "(e.g. sqlite:///path/results.sqlite or postgresql+psycopg://user@host/db)."
            ) from None
        if found not in (None, SCHEMA_VERSION):
            self.engine.dispose()
            raise StoreError(
                f"the results store at {self._safe_url()} has schema version {found}, this harness uses "
                f"{SCHEMA_VERSION}; use a new store (--home/--db) or the harness version that made it"
            )
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"

    def _safe_url(self) -> str:
        try:
            from sqlalchemy.engine import make_url

            return make_url(self.url).render_as_string(hide_password=True)
        except Exception:
            return "<unparsable URL>"

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed on success, rolled back on error."""
        with self._sessions() as sess:
            try:
                yield sess
                sess.commit()
            except OperationalError as exc:
                sess.rollback()
                raise StoreError(f"results store error at {self._safe_url()}: {exc.orig}") from None
            except BaseException:
                sess.rollback()
                raise

    # --- registration -----------------------------------------------------------------------------------
    def ensure_task(self, task_id: str, title: str, spec_hash: str) -> None:
        """Create or update the task row."""
        with self.session() as sess:
            row = sess.get(TaskRow, task_id)
            if row is None:
                sess.add(TaskRow(id=task_id, title=title, spec_hash=spec_hash))
            else:
                row.title, row.spec_hash = title, spec_hash

    def has_task(self, task_id: str) -> bool:
        """Whether the store knows the task."""
        with self.session() as sess:
            return sess.get(TaskRow, task_id) is not None

    def task_ids(self) -> list[str]:
        """Ids of all tasks in the store, sorted."""
        with self.session() as sess:
            return sorted(sess.scalars(select(TaskRow.id)))

    def register_submission(
        self,
        task_id: str,
        team: str,
        content_hash: str,
        *,
        source: str,
        kind: str,
        entry: str,
        n_files: int = 0,
        n_bytes: int = 0,
        notes: Sequence[str] = (),
        submitted_at: dt.datetime | None = None,
    ) -> tuple[int, bool]:
        """Record a team's submission unless the same content is already recorded for that team.

        Returns:
            ``(submission_id, created)``; ``created`` is False when the team had submitted this content before.
        """
        found = NewSubmission(
            content_hash=content_hash, source=source, kind=kind, entry=entry, n_files=n_files, n_bytes=n_bytes,
            notes=tuple(notes), submitted_at=submitted_at,
        )  # fmt: skip
        with self.session() as sess:
            team_row = _find_team(sess, task_id, team) or _add_team(sess, task_id, team)
            existing = _find_submission(sess, team_row, content_hash)
            if existing is not None:
                return existing.id, False
            return _add_submission(sess, task_id, team_row, found, utcnow()).id, True

    def is_known(self, task_id: str, team: str, content_hash: str) -> bool:
        """Whether the team already submitted this content for the task."""
        with self.session() as sess:
            query = (
                select(SubmissionRow.id)
                .join(TeamRow, SubmissionRow.team_id == TeamRow.id)
                .where(
                    SubmissionRow.task_id == task_id, TeamRow.name == team, SubmissionRow.content_hash == content_hash
                )
            )
            return sess.scalars(query).first() is not None

    def registered_today(self, task_id: str, team: str, now: dt.datetime | None = None) -> int:
        """How many distinct submissions the team registered on the current UTC day (for daily limits)."""
        now = now or utcnow()
        with self.session() as sess:
            team_id = sess.scalar(select(TeamRow.id).where(TeamRow.task_id == task_id, TeamRow.name == team))
            return 0 if team_id is None else _registered_on_day(sess, team_id, now)

    def plan_submission(
        self,
        task_id: str,
        team: str,
        submission: NewSubmission,
        *,
        phase: str,
        rerun: bool = False,
        daily_limit: int | None = None,
        now: dt.datetime | None = None,
    ) -> tuple[Plan, int | None]:
        """Decide, in one transaction, what a batch does with one entry, and record its submission if it is run.

        The decision, in order: a team at ``daily_limit`` new submissions today (UTC) whose content is new gets
        :attr:`Plan.OVER_LIMIT` and nothing is recorded (a call on a later day takes it); otherwise the submission is
        recorded (or found: the same content from the same team is the same submission) and gets
        :attr:`Plan.RERUN` when ``rerun``, :attr:`Plan.NEW` without an active result in ``phase``,
        :attr:`Plan.RETRY` when its active result is a ``harness_error`` (the harness was at fault), else
        :attr:`Plan.UNCHANGED`.

        Args:
            task_id: the task (its row must exist: :meth:`ensure_task`).
            team: the team's name.
            submission: what to record.
            phase: ``test`` or ``validation``.
            rerun: evaluate again whatever its result.
            daily_limit: the spec's limit, or ``None`` for none (pass ``None`` for entries that could not be
                opened: they are recorded as rejected whatever the limit).
            now: the time the day is taken from (default: now, UTC).

        Returns:
            ``(plan, submission_id)``; ``submission_id`` is ``None`` only for :attr:`Plan.OVER_LIMIT`.
        """
        now = now or utcnow()
        with self.session() as sess:
            team_row = _find_team(sess, task_id, team)
            existing = _find_submission(sess, team_row, submission.content_hash)
            if existing is None:
                if daily_limit and team_row is not None and _registered_on_day(sess, team_row.id, now) >= daily_limit:
                    return Plan.OVER_LIMIT, None
                team_row = team_row or _add_team(sess, task_id, team)
                existing = _add_submission(sess, task_id, team_row, submission, now)
                return (Plan.RERUN if rerun else Plan.NEW), existing.id
            if rerun:
                return Plan.RERUN, existing.id
            active_status = sess.scalar(
                select(RunRow.status).where(
                    RunRow.submission_id == existing.id, RunRow.phase == phase, RunRow.active.is_(True)
                )
            )
            if active_status is None:
                return Plan.NEW, existing.id
            if active_status == Status.HARNESS_ERROR:
                return Plan.RETRY, existing.id
            return Plan.UNCHANGED, existing.id

    # --- runs ---------------------------------------------------------------------------------------------
    def active_run(self, submission_id: int, phase: str) -> RunRow | None:
        """The submission's active (finished) run in a phase, or None."""
        with self.session() as sess:
            return sess.scalars(
                select(RunRow).where(
                    RunRow.submission_id == submission_id, RunRow.phase == phase, RunRow.active.is_(True)
                )
            ).first()

    def start_run(self, submission_id: int, phase: str) -> int:
        """Write a ``running`` row before the sandbox starts (evidence if the coordinator dies). Returns its id."""
        with self.session() as sess:
            row = RunRow(submission_id=submission_id, phase=phase, status=Status.RUNNING.value, coordinator=self.owner)
            sess.add(row)
            sess.flush()
            return row.id

    def finish_run(self, run_id: int, record: RunRecord) -> None:
        """Record a run's outcome atomically and make it its submission's active run (replacing any other).

        The record is stored as it is: status, reason, problems, timings, resource use, artifacts folder and
        provenance (with its ``notes`` and ``limits`` kept under the provenance's keys of those names), and one
        score row per split and metric. A ``succeeded`` run must come with scores: a run is never finished without
        its metrics.

        Args:
            run_id: the row made by :meth:`start_run`.
            record: the run's outcome; its ``status`` must be one of :data:`~harness.status.FINAL_STATUSES`.

        Raises:
            StoreError: unknown run, a status outside :data:`FINAL_STATUSES`, or ``succeeded`` without scores.
        """
        status = record.status
        if status not in FINAL_STATUSES:
            expected = sorted(final.value for final in FINAL_STATUSES)
            raise StoreError(f"cannot finish run {run_id} with status {status.value!r}; expected one of {expected}")
        if status is Status.SUCCEEDED and not record.scores:
            raise StoreError(f"run {run_id} cannot succeed without scores")
        provenance = dict(record.provenance)
        if record.notes:
            provenance["notes"] = list(record.notes)
        if record.limits:
            provenance["limits"] = dict(record.limits)
        with self.session() as sess:
            row = sess.get(RunRow, run_id)
            if row is None:
                raise StoreError(f"no run {run_id} in the store")
            sess.execute(
                update(RunRow)
                .where(
                    RunRow.submission_id == row.submission_id,
                    RunRow.phase == row.phase,
                    RunRow.id != run_id,
                    RunRow.active.is_(True),
                )
                .values(active=False)
            )
            sess.flush()
            row.status = status.value
            row.reason = record.reason
            row.problems = list(record.problems)
            row.duration_s = record.duration_s
            row.peak_memory_mb = record.peak_memory_mb
            row.exit_code = record.exit_code
            row.artifacts_dir = record.artifacts_dir
            row.provenance = provenance
            if record.started_at is not None:
                row.started_at = record.started_at
            row.finished_at = record.finished_at or utcnow()
            row.active = True
            for split, metrics in record.scores.items():
                for metric, value in metrics.items():
                    sess.add(ScoreRow(run_id=run_id, split=split, metric=metric, value=float(value)))

    def recover_interrupted(self, task_id: str) -> int:
        """Mark runs left ``running``/``queued`` by a dead coordinator as ``interrupted``. Returns their count.

        Call only while holding the task's lease (no live coordinator owns those rows then).
        """
        with self.session() as sess:
            sub_ids = select(SubmissionRow.id).where(SubmissionRow.task_id == task_id)
            result = sess.execute(
                update(RunRow)
                .where(
                    RunRow.submission_id.in_(sub_ids), RunRow.status.in_((Status.RUNNING.value, Status.QUEUED.value))
                )
                .values(
                    status=Status.INTERRUPTED.value,
                    reason="the coordinator stopped before this run finished",
                    active=False,
                )
            )
            count = _rowcount(result)
        if count:
            log.warning(
                "marked %s run(s) of task %s as interrupted; their submissions will be evaluated again", count, task_id
            )
        return count

    def interrupt_runs(self, run_ids: Sequence[int], reason: str) -> int:
        """Mark this coordinator's runs that are still ``running`` as ``interrupted`` (inactive history).

        Called by a coordinator that stops on a signal after it removed the runs' sandboxes, so the store says what
        happened without waiting for the next call. Finished runs among ``run_ids`` are left alone.

        Returns:
            How many runs were marked.
        """
        if not run_ids:
            return 0
        with self.session() as sess:
            result = sess.execute(
                update(RunRow)
                .where(RunRow.id.in_(list(run_ids)), RunRow.status == Status.RUNNING.value)
                .values(status=Status.INTERRUPTED.value, reason=reason, active=False, finished_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            return _rowcount(result)

    # --- lease --------------------------------------------------------------------------------------------
    def acquire_lease(self, task_id: str) -> None:
        """Become the only coordinator writing runs of ``task_id``.

        A lease held by a process that no longer exists on this host, or not renewed for
        :data:`LEASE_STALE_S` seconds, is taken over.

        Raises:
            StoreError: another live coordinator holds the lease (the message names its host and pid).
        """
        host, pid = socket.gethostname(), os.getpid()
        for _attempt in range(3):
            with self.session() as sess:
                row = sess.get(LeaseRow, task_id)
                now = utcnow()
                if row is None:
                    sess.add(LeaseRow(task_id=task_id, owner=self.owner, host=host, pid=pid, renewed_at=now))
                    try:
                        sess.flush()
                    except IntegrityError:
                        sess.rollback()
                        continue
                    return
                renewed = aware(row.renewed_at)
                if row.owner == self.owner:
                    row.renewed_at = now
                    return
                dead = row.host == host and not pid_alive(row.pid)
                stale = (now - renewed).total_seconds() > LEASE_STALE_S
                if dead or stale:
                    # Only if the row is still the one judged: two coordinators may find the same dead holder.
                    # PostgreSQL (read committed) re-checks the condition after the other's commit and updates
                    # nothing, where an update of the row read before would have made both holders.
                    taken = sess.execute(
                        update(LeaseRow)
                        .where(LeaseRow.task_id == task_id, LeaseRow.owner == row.owner)
                        .values(owner=self.owner, host=host, pid=pid, renewed_at=now)
                        .execution_options(synchronize_session=False)
                    )
                    if _rowcount(taken) != 1:
                        continue  # someone else took it over first: look at the new holder
                    log.warning(
                        "took over the lease of task %s from %s (%s)",
                        task_id,
                        row.owner,
                        "process gone" if dead else "not renewed",
                    )
                    return
                raise StoreError(
                    f"another `harness run` (pid {row.pid} on {row.host}) is evaluating task {task_id!r} in this "
                    "store; wait for it to finish (nothing will run twice), or stop it and run again"
                )
        raise StoreError(f"could not take the lease of task {task_id!r}; try again")

    def renew_lease(self, task_id: str) -> None:
        """Refresh this coordinator's lease (call periodically during long batches)."""
        with self.session() as sess:
            sess.execute(
                update(LeaseRow)
                .where(LeaseRow.task_id == task_id, LeaseRow.owner == self.owner)
                .values(renewed_at=utcnow())
                .execution_options(synchronize_session=False)
            )

    def release_lease(self, task_id: str) -> None:
        """Give up the lease if this coordinator holds it."""
        with self.session() as sess:
            sess.execute(
                delete(LeaseRow)
                .where(LeaseRow.task_id == task_id, LeaseRow.owner == self.owner)
                .execution_options(synchronize_session=False)
            )

    # --- reading ------------------------------------------------------------------------------------------
    def runs(self, task_id: str, *, phase: str = "test", active_only: bool = True) -> list[ScoredRun]:
        """Runs of a task joined with their submission, team and scores, oldest submission first (ties:
        submission id, then run id).

        On SQLite by two plain queries on the driver's connection (:func:`harness.store.reading.sqlite_runs`:
        a leaderboard of 10,000 runs reads them in a fraction of the ORM's time); elsewhere by SQLAlchemy.

        Raises:
            StoreError: the store cannot be read.
        """
        if self.engine.dialect.name != "sqlite":
            return self._runs_sqlalchemy(task_id, phase=phase, active_only=active_only)
        import sqlite3

        try:
            with self.engine.connect() as conn:
                return sqlite_runs(conn.connection.dbapi_connection, task_id, phase=phase, active_only=active_only)  # type: ignore[arg-type]
        except sqlite3.Error as exc:
            raise StoreError(f"results store error at {self._safe_url()}: {exc}") from None

    def _runs_sqlalchemy(self, task_id: str, *, phase: str = "test", active_only: bool = True) -> list[ScoredRun]:
        """:meth:`runs` by SQLAlchemy (any database; what SQLite's plain read is tested against)."""
        run_columns = (
            RunRow.id, RunRow.phase, RunRow.status, RunRow.reason, RunRow.problems, RunRow.active, RunRow.started_at,
            RunRow.finished_at, RunRow.duration_s, RunRow.peak_memory_mb, RunRow.exit_code, RunRow.artifacts_dir,
            RunRow.provenance,
        )  # fmt: skip
        other_columns = (
            TeamRow.name, SubmissionRow.id, SubmissionRow.content_hash, SubmissionRow.source, SubmissionRow.kind,
            SubmissionRow.submitted_at,
        )  # fmt: skip
        with self.session() as sess:
            query = (  # columns as tuples, not ORM objects: a leaderboard of 10,000 runs reads them in a fraction
                select(*run_columns, *other_columns)
                .join(SubmissionRow, RunRow.submission_id == SubmissionRow.id)
                .join(TeamRow, SubmissionRow.team_id == TeamRow.id)
                .where(SubmissionRow.task_id == task_id, RunRow.phase == phase)
                .order_by(SubmissionRow.submitted_at, SubmissionRow.id, RunRow.id)
            )
            if active_only:
                query = query.where(RunRow.active.is_(True))
            rows = sess.execute(query).all()
            run_ids = [row[0] for row in rows]
            scores: dict[int, dict[str, dict[str, float]]] = {}
            for chunk_start in range(0, len(run_ids), 500):
                chunk = run_ids[chunk_start : chunk_start + 500]
                columns = (ScoreRow.run_id, ScoreRow.split, ScoreRow.metric, ScoreRow.value)
                for run_id, split, metric, value in sess.execute(select(*columns).where(ScoreRow.run_id.in_(chunk))):
                    scores.setdefault(run_id, {}).setdefault(split, {})[metric] = value
        return scored_runs(rows, task_id, scores, when=aware, decode=_as_stored)

    def run_counts(self, task_id: str) -> dict[str, int]:
        """Number of runs per status (all runs, active or not) of a task, for summaries."""
        counts: dict[str, int] = {}
        for run in self.runs(task_id, active_only=False):
            counts[run.status] = counts.get(run.status, 0) + 1
        return counts


def _as_stored(value: Any) -> Any:
    """SQLAlchemy's JSON columns arrive decoded already (:func:`harness.store.reading.scored_runs`' ``decode``)."""
    return value


def _find_team(sess: Session, task_id: str, team: str) -> TeamRow | None:
    return sess.scalars(select(TeamRow).where(TeamRow.task_id == task_id, TeamRow.name == team)).first()


def _add_team(sess: Session, task_id: str, team: str) -> TeamRow:
    row = TeamRow(task_id=task_id, name=team)
    sess.add(row)
    sess.flush()
    return row


def _find_submission(sess: Session, team_row: TeamRow | None, content_hash: str) -> SubmissionRow | None:
    """The team's submission of this content (the same content from the same team is the same submission)."""
    if team_row is None:
        return None
    return sess.scalars(
        select(SubmissionRow).where(SubmissionRow.team_id == team_row.id, SubmissionRow.content_hash == content_hash)
    ).first()


def _add_submission(
    sess: Session, task_id: str, team_row: TeamRow, submission: NewSubmission, now: dt.datetime
) -> SubmissionRow:
    row = SubmissionRow(
        task_id=task_id,
        team_id=team_row.id,
        content_hash=submission.content_hash,
        source=submission.source,
        kind=submission.kind,
        entry=submission.entry,
        n_files=submission.n_files,
        n_bytes=submission.n_bytes,
        notes=list(submission.notes),
        submitted_at=submission.submitted_at or now,
    )
    sess.add(row)
    sess.flush()
    return row


def _registered_on_day(sess: Session, team_id: int, now: dt.datetime) -> int:
    """Distinct submissions a team registered on ``now``'s UTC day."""
    day_start = now.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    count = sess.scalar(
        select(func.count(SubmissionRow.id)).where(
            SubmissionRow.team_id == team_id,
            SubmissionRow.registered_at >= day_start,
            SubmissionRow.registered_at < day_start + dt.timedelta(days=1),
        )
    )
    return int(count or 0)


def _rowcount(result: Any) -> int:
    """Rows matched by an UPDATE or DELETE (``CursorResult.rowcount``; 0 where the driver cannot tell)."""
    return max(int(getattr(result, "rowcount", 0) or 0), 0)


def dumps_provenance(provenance: dict[str, Any]) -> str:
    """Provenance as stable JSON (sorted keys), e.g. for artifacts."""
    return json.dumps(provenance, sort_keys=True, indent=2, default=str)
