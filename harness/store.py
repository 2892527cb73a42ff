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
import json
import logging
import os
import socket
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from harness.errors import StoreError
from harness.procs import pid_alive

__all__ = [
    "FINAL_STATUSES",
    "STATUSES",
    "RunRow",
    "Store",
    "default_home",
    "resolve_db_url",
]

log = logging.getLogger(__name__)

#: Every run status. Only ``harness_error`` means the harness itself is at fault; ``rejected`` means the
#: submission was refused at the door (unsafe archive, invalid notebook, no ``parameters`` cell) and never ran;
#: ``interrupted`` marks a run whose coordinator died (it is history, never active).
STATUSES = (
    "queued",
    "running",
    "succeeded",
    "failed",
    "timed_out",
    "out_of_memory",
    "rejected",
    "invalid_output",
    "evaluator_error",
    "harness_error",
    "interrupted",
)
#: Statuses a finished run can have (it is then the submission's active result).
FINAL_STATUSES = frozenset(STATUSES) - {"queued", "running", "interrupted"}

#: A lease not renewed for this long (seconds) is considered abandoned even if its process looks alive.
LEASE_STALE_S = 300.0


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class _Text(TypeDecorator[str]):
    """``TEXT`` that stores NUL characters as U+FFFD, on every backend alike.

    PostgreSQL's text types cannot hold NUL (psycopg refuses the whole statement), while a team decides what its
    program prints, and a failed run's ``reason`` quotes the tail of that output.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return value.replace("\x00", "\ufffd") if value is not None else None


class _Base(DeclarativeBase):
    pass


class TaskRow(_Base):
    """One task known to the store."""

    __tablename__ = "tasks"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    title: Mapped[str] = mapped_column(_Text())
    spec_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)


class TeamRow(_Base):
    """A team of one task."""

    __tablename__ = "teams"
    __table_args__ = (UniqueConstraint("task_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id"))
    name: Mapped[str] = mapped_column(String(255))  # a folder's name (the default team name) has up to 255


class SubmissionRow(_Base):
    """One distinct content submitted by a team (the same content again is the same submission)."""

    __tablename__ = "submissions"
    __table_args__ = (UniqueConstraint("team_id", "content_hash"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id"), index=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"), index=True)
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    source: Mapped[str] = mapped_column(_Text())
    kind: Mapped[str] = mapped_column(String(16))
    entry: Mapped[str] = mapped_column(_Text())
    n_files: Mapped[int] = mapped_column(Integer, default=0)
    n_bytes: Mapped[int] = mapped_column(Integer, default=0)
    notes: Mapped[list[str]] = mapped_column(JSON, default=list)
    submitted_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)
    registered_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)


class RunRow(_Base):
    """One evaluation of one submission in one phase. Scores hang off it."""

    __tablename__ = "runs"
    __table_args__ = (
        Index(
            "one_active_run",
            "submission_id",
            "phase",
            unique=True,
            sqlite_where=text("active = 1"),
            postgresql_where=text("active"),
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"), index=True)
    phase: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(32), default="running")
    reason: Mapped[str] = mapped_column(_Text(), default="")
    problems: Mapped[list[str]] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    duration_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    peak_memory_mb: Mapped[float | None] = mapped_column(Float, nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    artifacts_dir: Mapped[str] = mapped_column(_Text(), default="")
    provenance: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    coordinator: Mapped[str] = mapped_column(String(255), default="")


class ScoreRow(_Base):
    """One metric value of one run on one split."""

    __tablename__ = "scores"
    __table_args__ = (UniqueConstraint("run_id", "split", "metric"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), index=True)
    split: Mapped[str] = mapped_column(String(32))
    metric: Mapped[str] = mapped_column(String(64))
    value: Mapped[float] = mapped_column(Float)


class MetaRow(_Base):
    """Key-value facts about the store itself (its schema version)."""

    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


#: Version of the tables above; a store made by another version is refused with a clear message.
SCHEMA_VERSION = "1"


class LeaseRow(_Base):
    """Which coordinator may write a task's runs now."""

    __tablename__ = "leases"
    task_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    owner: Mapped[str] = mapped_column(String(255))
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    renewed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


def default_home() -> Path:
    """The harness home: ``$HARNESS_HOME`` or ``./.harness`` (store file and artifacts live there)."""
    return Path(os.environ.get("HARNESS_HOME", ".harness")).resolve()


def resolve_db_url(db_url: str | None = None, home: Path | None = None) -> str:
    """The store URL, most explicit first: ``db_url`` (``--db``), else the SQLite file of an explicitly given
    ``home`` (``--home``), else ``$HARNESS_DB_URL``, else ``results.sqlite`` in :func:`default_home`."""
    if db_url:
        return db_url
    if home is not None:
        return f"sqlite:///{Path(home).resolve() / 'results.sqlite'}"
    env = os.environ.get("HARNESS_DB_URL")
    if env:
        return env
    return f"sqlite:///{default_home() / 'results.sqlite'}"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    for attempt in range(100):  # switching a new file to WAL does not wait on busy_timeout: retry for ~5 s
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 99:
                raise
            time.sleep(0.05)
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


#: Key of the PostgreSQL advisory lock that serialises creating the store's tables.
_SCHEMA_LOCK_KEY = 0x6861726E657373  # "harness"


def _prepare_schema(conn: Connection) -> str | None:
    """Create the tables and the schema version row where missing; returns the version found (None: new store).

    Coordinators of different tasks may open one new store at the same moment. Creating tables is
    check-then-create, and concurrent ``CREATE TABLE`` of one name fails on PostgreSQL (a unique violation in
    ``pg_type``) and on SQLite ("table already exists"). So when a table is missing, the creation runs under a
    lock: PostgreSQL's transaction-scoped advisory lock (its DDL is transactional: the others see all tables
    or none), SQLite's write lock (``BEGIN IMMEDIATE``). An existing store is only read, without a lock.
    """
    existing = set(inspect(conn).get_table_names())
    if "runs" in existing and "meta" not in existing:
        return "0 (made before stores recorded their version)"
    if not set(_Base.metadata.tables) <= existing:
        if conn.dialect.name == "postgresql":
            conn.execute(select(func.pg_advisory_xact_lock(_SCHEMA_LOCK_KEY)))
        elif conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        _Base.metadata.create_all(conn)  # checks again, under the lock
    found = conn.execute(select(MetaRow.value).where(MetaRow.key == "schema_version")).scalar()
    if found is None:
        conn.execute(insert(MetaRow).values(key="schema_version", value=SCHEMA_VERSION))
    return found


@dataclass(frozen=True)
class ScoredRun:
    """A flat view of one run joined with its submission and team (what metric tables are built from).

    ``scores`` maps split -> metric -> value.
    """

    run_id: int
    task_id: str
    team: str
    submission_id: int
    content_hash: str
    source: str
    kind: str
    submitted_at: dt.datetime
    phase: str
    status: str
    reason: str
    problems: list[str]
    active: bool
    started_at: dt.datetime
    finished_at: dt.datetime | None
    duration_s: float | None
    peak_memory_mb: float | None
    exit_code: int | None
    artifacts_dir: str
    provenance: dict[str, Any]
    scores: dict[str, dict[str, float]]


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
                event.listen(self.engine, "connect", _sqlite_pragmas)
            with self.engine.begin() as conn:
                found = _prepare_schema(conn)
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
        with self.session() as sess:
            team_row = sess.scalars(select(TeamRow).where(TeamRow.task_id == task_id, TeamRow.name == team)).first()
            if team_row is None:
                team_row = TeamRow(task_id=task_id, name=team)
                sess.add(team_row)
                sess.flush()
            existing = sess.scalars(
                select(SubmissionRow).where(
                    SubmissionRow.team_id == team_row.id, SubmissionRow.content_hash == content_hash
                )
            ).first()
            if existing is not None:
                return existing.id, False
            row = SubmissionRow(
                task_id=task_id,
                team_id=team_row.id,
                content_hash=content_hash,
                source=source,
                kind=kind,
                entry=entry,
                n_files=n_files,
                n_bytes=n_bytes,
                notes=list(notes),
                submitted_at=submitted_at or _utcnow(),
            )
            sess.add(row)
            sess.flush()
            return row.id, True

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
        now = now or _utcnow()
        day_start = now.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        with self.session() as sess:
            query = (
                select(SubmissionRow.id)
                .join(TeamRow, SubmissionRow.team_id == TeamRow.id)
                .where(
                    SubmissionRow.task_id == task_id,
                    TeamRow.name == team,
                    SubmissionRow.registered_at >= day_start,
                    SubmissionRow.registered_at < day_start + dt.timedelta(days=1),
                )
            )
            return len(sess.scalars(query).all())

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
            row = RunRow(submission_id=submission_id, phase=phase, status="running", coordinator=self.owner)
            sess.add(row)
            sess.flush()
            return row.id

    def finish_run(
        self,
        run_id: int,
        *,
        status: str,
        reason: str = "",
        problems: Sequence[str] = (),
        scores: dict[str, dict[str, float]] | None = None,
        duration_s: float | None = None,
        peak_memory_mb: float | None = None,
        exit_code: int | None = None,
        artifacts_dir: str = "",
        provenance: dict[str, Any] | None = None,
        started_at: dt.datetime | None = None,
        finished_at: dt.datetime | None = None,
    ) -> None:
        """Record a run's outcome atomically and make it its submission's active run (replacing any other).

        A ``succeeded`` run must come with scores: a run is never finished without its metrics.

        Raises:
            StoreError: unknown run, a status outside :data:`FINAL_STATUSES`, or ``succeeded`` without scores.
        """
        if status not in FINAL_STATUSES:
            raise StoreError(
                f"cannot finish run {run_id} with status {status!r}; expected one of {sorted(FINAL_STATUSES)}"
            )
        if status == "succeeded" and not scores:
            raise StoreError(f"run {run_id} cannot succeed without scores")
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
            row.status = status
            row.reason = reason
            row.problems = list(problems)
            row.duration_s = duration_s
            row.peak_memory_mb = peak_memory_mb
            row.exit_code = exit_code
            row.artifacts_dir = artifacts_dir
            row.provenance = dict(provenance or {})
            if started_at is not None:
                row.started_at = started_at
            row.finished_at = finished_at or _utcnow()
            row.active = True
            for split, metrics in (scores or {}).items():
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
                .where(RunRow.submission_id.in_(sub_ids), RunRow.status.in_(("running", "queued")))
                .values(status="interrupted", reason="the coordinator stopped before this run finished", active=False)
            )
            count = _rowcount(result)
        if count:
            log.warning(
                "marked %s run(s) of task %s as interrupted; their submissions will be evaluated again", count, task_id
            )
        return count

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
                now = _utcnow()
                if row is None:
                    sess.add(LeaseRow(task_id=task_id, owner=self.owner, host=host, pid=pid, renewed_at=now))
                    try:
                        sess.flush()
                    except IntegrityError:
                        sess.rollback()
                        continue
                    return
                renewed = _aware(row.renewed_at)
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
                .values(renewed_at=_utcnow())
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
        """Runs of a task joined with their submission, team and scores, oldest submission first."""
        with self.session() as sess:
            query = (
                select(RunRow, SubmissionRow, TeamRow)
                .join(SubmissionRow, RunRow.submission_id == SubmissionRow.id)
                .join(TeamRow, SubmissionRow.team_id == TeamRow.id)
                .where(SubmissionRow.task_id == task_id, RunRow.phase == phase)
                .order_by(SubmissionRow.submitted_at, SubmissionRow.id, RunRow.id)
            )
            if active_only:
                query = query.where(RunRow.active.is_(True))
            rows = sess.execute(query).all()
            run_ids = [run.id for run, _sub, _team in rows]
            scores: dict[int, dict[str, dict[str, float]]] = {}
            for chunk_start in range(0, len(run_ids), 500):
                chunk = run_ids[chunk_start : chunk_start + 500]
                for score in sess.scalars(select(ScoreRow).where(ScoreRow.run_id.in_(chunk))):
                    scores.setdefault(score.run_id, {}).setdefault(score.split, {})[score.metric] = score.value
            out = []
            for run, sub, team in rows:
                out.append(
                    ScoredRun(
                        run_id=run.id,
                        task_id=task_id,
                        team=team.name,
                        submission_id=sub.id,
                        content_hash=sub.content_hash,
                        source=sub.source,
                        kind=sub.kind,
                        submitted_at=_aware(sub.submitted_at),
                        phase=run.phase,
                        status=run.status,
                        reason=run.reason,
                        problems=list(run.problems or []),
                        active=run.active,
                        started_at=_aware(run.started_at),
                        finished_at=_aware(run.finished_at) if run.finished_at else None,
                        duration_s=run.duration_s,
                        peak_memory_mb=run.peak_memory_mb,
                        exit_code=run.exit_code,
                        artifacts_dir=run.artifacts_dir,
                        provenance=dict(run.provenance or {}),
                        scores=scores.get(run.id, {}),
                    )
                )
            return out

    def run_counts(self, task_id: str) -> dict[str, int]:
        """Number of runs per status (all runs, active or not) of a task, for summaries."""
        counts: dict[str, int] = {}
        for run in self.runs(task_id, active_only=False):
            counts[run.status] = counts.get(run.status, 0) + 1
        return counts


def _rowcount(result: Any) -> int:
    """Rows matched by an UPDATE or DELETE (``CursorResult.rowcount``; 0 where the driver cannot tell)."""
    return max(int(getattr(result, "rowcount", 0) or 0), 0)


def _aware(value: dt.datetime) -> dt.datetime:
    """A stored time in UTC: SQLite gives naive datetimes (stored as UTC); PostgreSQL gives aware ones in the
    session's TimeZone (the server's setting, often local time), which are converted."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def dumps_provenance(provenance: dict[str, Any]) -> str:
    """Provenance as stable JSON (sorted keys), e.g. for artifacts."""
    return json.dumps(provenance, sort_keys=True, indent=2, default=str)
