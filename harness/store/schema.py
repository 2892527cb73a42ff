"""The store's tables (SQLAlchemy ORM rows), their schema version, and how a new store's tables are created.

One row class per table: tasks, teams, submissions, runs (with a partial unique index allowing one active run per
submission and phase), scores (one row per run, split and metric), meta (the schema version) and leases (one
coordinator per task). Text columns store NUL as U+FFFD on every backend. Only :mod:`harness.store` uses them.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
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
    func,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from harness.status import Status
from harness.store.reading import SCHEMA_VERSION as _SCHEMA_VERSION

__all__ = [
    "SCHEMA_VERSION",
    "LeaseRow",
    "MetaRow",
    "RunRow",
    "ScoreRow",
    "SubmissionRow",
    "TaskRow",
    "TeamRow",
    "aware",
    "prepare_schema",
    "sqlite_pragmas",
    "utcnow",
]


def utcnow() -> dt.datetime:
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
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


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
    submitted_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    registered_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


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
    status: Mapped[str] = mapped_column(String(32), default=Status.RUNNING.value)
    reason: Mapped[str] = mapped_column(_Text(), default="")
    problems: Mapped[list[str]] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
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


#: Version of the tables above (kept in :mod:`harness.store.reading`, which reads them without SQLAlchemy); a
#: store made by another version is refused with a clear message.
SCHEMA_VERSION = _SCHEMA_VERSION


class LeaseRow(_Base):
    """Which coordinator may write a task's runs now."""

    __tablename__ = "leases"
    task_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    owner: Mapped[str] = mapped_column(String(255))
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    renewed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


def sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
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


def prepare_schema(conn: Connection) -> str | None:
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


def aware(value: dt.datetime) -> dt.datetime:
    """A stored time in UTC: SQLite gives naive datetimes (stored as UTC); PostgreSQL gives aware ones in the
    session's TimeZone (the server's setting, often local time), which are converted."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
