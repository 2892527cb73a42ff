"""Reading a task's runs: the :class:`ScoredRun` view, and the SQLite read path on the standard library alone.

Why a path of its own: ``harness leaderboard`` over 10,000 runs spent about a third of its first call importing
SQLAlchemy and walking its ORM layer row by row (10,000 run rows, 40,000 score rows, 20 chunked score queries).
Here the same rows come from two plain ``sqlite3`` queries in one read transaction, converted as SQLAlchemy's
column types convert them (``DATETIME`` text by :meth:`datetime.datetime.fromisoformat`, ``JSON`` text by
:func:`json.loads`, booleans from 0/1), so :meth:`harness.store.Store.runs` on a SQLite store and
:class:`SQLiteReader` return the same runs. Nothing here imports SQLAlchemy: the leaderboard opens a
:class:`SQLiteReader` when the store is a SQLite file of this schema (:func:`open_reader`), and the full
:class:`~harness.store.Store` otherwise (a new file, another schema version, PostgreSQL), which makes the tables
or says what is wrong.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from harness.status import Status

__all__ = [
    "SCHEMA_VERSION",
    "RunSource",
    "SQLiteReader",
    "ScoredRun",
    "default_home",
    "open_reader",
    "resolve_db_url",
    "scored_runs",
    "sqlite_runs",
]

#: Version of the store's tables (:mod:`harness.store.schema`); a store made by another version is refused.
SCHEMA_VERSION: Final = "1"
#: The tables of :mod:`harness.store.schema` (a test checks the two agree).
TABLES: Final = frozenset({"tasks", "teams", "submissions", "runs", "scores", "meta", "leases"})


def default_home() -> Path:
    """The harness home: ``$HARNESS_HOME`` or ``./.harness`` (store file and artifacts live there); see
    :class:`harness.settings.Settings`."""
    from harness.settings import get_settings

    return get_settings().home_dir()


def resolve_db_url(db_url: str | None = None, home: Path | None = None) -> str:
    """The store URL, most explicit first: ``db_url`` (``--db``), else the SQLite file of an explicitly given
    ``home`` (``--home``), else ``$HARNESS_DB_URL``, else ``results.sqlite`` in :func:`default_home`; see
    :meth:`harness.settings.Settings.store_url`."""
    from harness.settings import get_settings

    return get_settings().store_url(db_url, home)


@dataclass(frozen=True)
class ScoredRun:
    """A flat view of one run joined with its submission and team (what metric tables are built from).

    The run's own fields are those of the :class:`~harness.record.RunRecord` it was finished with (``notes`` and
    ``limits`` inside ``provenance``); ``scores`` maps split -> metric -> value.
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
    status: Status
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


class RunSource(Protocol):
    """What the leaderboard reads from a store: a :class:`~harness.store.Store` or a :class:`SQLiteReader`."""

    url: str

    def runs(self, task_id: str, *, phase: str = "test", active_only: bool = True) -> list[ScoredRun]:
        """Runs of a task joined with their submission, team and scores, oldest submission first."""
        ...

    def task_ids(self) -> list[str]:
        """Ids of the tasks in the store, sorted."""
        ...

    def _safe_url(self) -> str: ...

    def close(self) -> None:
        """Release the connection(s)."""
        ...


_RUNS = (
    "SELECT runs.id, runs.phase, runs.status, runs.reason, runs.problems, runs.active, runs.started_at, "
    "runs.finished_at, runs.duration_s, runs.peak_memory_mb, runs.exit_code, runs.artifacts_dir, runs.provenance, "
    "teams.name, submissions.id, submissions.content_hash, submissions.source, submissions.kind, "
    "submissions.submitted_at "
    "FROM runs JOIN submissions ON runs.submission_id = submissions.id JOIN teams ON submissions.team_id = teams.id "
    "WHERE submissions.task_id = ? AND runs.phase = ?{active} "
    "ORDER BY submissions.submitted_at, submissions.id, runs.id"
)
_SCORES = (  # the same runs' scores in one query (not one per chunk of run ids)
    "SELECT scores.run_id, scores.split, scores.metric, scores.value "
    "FROM scores JOIN runs ON scores.run_id = runs.id JOIN submissions ON runs.submission_id = submissions.id "
    "WHERE submissions.task_id = ? AND runs.phase = ?{active} "
    "ORDER BY scores.run_id, scores.id"
)
_ACTIVE = " AND runs.active = 1"


def _utc(text: str) -> dt.datetime:
    """A stored time (SQLAlchemy's SQLite ``DATETIME`` text, naive UTC) as an aware UTC datetime (as
    :func:`harness.store.schema.aware` makes it)."""
    if len(text) == 26 and text[10] == " ":  # SQLAlchemy's own form, with microseconds: read as UTC at once
        return dt.datetime.fromisoformat(text + "+00:00")
    value = dt.datetime.fromisoformat(text)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def sqlite_runs(
    conn: sqlite3.Connection, task_id: str, *, phase: str = "test", active_only: bool = True
) -> list[ScoredRun]:
    """The runs of a task in a SQLite store, as :meth:`harness.store.Store.runs` gives them (same order, same
    values), read in one transaction (a batch finishing runs meanwhile is either wholly seen or not at all).

    Args:
        conn: a ``sqlite3`` connection to the store (the caller's; its transaction state is left as found).
        task_id, phase: the task and phase (``test`` or ``validation``).
        active_only: only the active run of each submission (else every run, interrupted ones included).

    Returns:
        ``ScoredRun`` list, oldest submission first (ties: submission id, then run id).

    Raises:
        sqlite3.Error: the store cannot be read.
    """
    own = not conn.in_transaction
    if own:
        conn.execute("BEGIN")  # both queries read one snapshot of the store
    try:
        active = _ACTIVE if active_only else ""
        rows = conn.execute(_RUNS.format(active=active), (task_id, phase)).fetchall()
        scores: dict[int, dict[str, dict[str, float]]] = {}
        for run_id, split, metric, value in conn.execute(_SCORES.format(active=active), (task_id, phase)):
            scores.setdefault(run_id, {}).setdefault(split, {})[metric] = value
    finally:
        if own:
            conn.execute("COMMIT")
    return scored_runs(rows, task_id, scores, when=_utc, decode=_json)


def _json(text: str | None) -> Any:
    """A stored ``JSON`` column's text as SQLAlchemy's JSON type reads it (``None`` stays ``None``)."""
    return None if text is None else json.loads(text)


def scored_runs(
    rows: Iterable[Sequence[Any]],
    task_id: str,
    scores: Mapping[int, dict[str, dict[str, float]]],
    *,
    when: Callable[[Any], dt.datetime],
    decode: Callable[[Any], Any],
) -> list[ScoredRun]:
    """:class:`ScoredRun` objects from rows of the runs query (the columns of ``_RUNS``, in that order).

    One builder for both read paths, the plain ``sqlite3`` one here and :meth:`harness.store.Store.runs` on
    SQLAlchemy: they differ only in how a stored time and a stored JSON value arrive, so each passes its converter.

    Args:
        rows: run, team and submission columns per run, in ``_RUNS``'s order.
        task_id: the task the rows belong to.
        scores: run id -> split -> metric -> value (a run without scores gets ``{}``).
        when: a stored time -> aware UTC datetime (``finished_at`` may be empty: it stays ``None``).
        decode: a stored JSON value (``problems``, ``provenance``) -> its Python value, ``None`` for none.
    """
    out = []
    for (run_id, run_phase, status, reason, problems, active, started_at, finished_at, duration_s, peak_memory_mb,
         exit_code, artifacts_dir, provenance, team, submission_id, content_hash, source, kind,
         submitted_at) in rows:  # fmt: skip
        out.append(
            ScoredRun(
                run_id=run_id,
                task_id=task_id,
                team=team,
                submission_id=submission_id,
                content_hash=content_hash,
                source=source,
                kind=kind,
                submitted_at=when(submitted_at),
                phase=run_phase,
                status=Status(status),
                reason=reason,
                problems=list(decode(problems) or []),
                active=bool(active),
                started_at=when(started_at),
                finished_at=when(finished_at) if finished_at else None,
                duration_s=duration_s,
                peak_memory_mb=peak_memory_mb,
                exit_code=exit_code,
                artifacts_dir=artifacts_dir,
                provenance=dict(decode(provenance) or {}),
                scores=scores.get(run_id, {}),
            )
        )
    return out


class SQLiteReader:
    """A read-only view of a SQLite store of this schema, on the standard library (see the module docstring).

    Open one with :func:`open_reader`, which checks the file first. It writes nothing: not the tables, not the
    journal mode, not the schema version.
    """

    def __init__(self, url: str, conn: sqlite3.Connection) -> None:
        self.url = url
        self._conn = conn

    def runs(self, task_id: str, *, phase: str = "test", active_only: bool = True) -> list[ScoredRun]:
        """:func:`sqlite_runs` of this store (see :meth:`harness.store.Store.runs`)."""
        return sqlite_runs(self._conn, task_id, phase=phase, active_only=active_only)

    def task_ids(self) -> list[str]:
        """Ids of the tasks in the store, sorted."""
        return sorted(row[0] for row in self._conn.execute("SELECT id FROM tasks"))

    def _safe_url(self) -> str:
        return self.url  # a file URL has no password to hide

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()


def open_reader(url: str) -> SQLiteReader | None:
    """A :class:`SQLiteReader` of the store at ``url`` when it is an existing SQLite file (``sqlite:///PATH``, no
    query string) in WAL mode with every table of this schema and its version; ``None`` otherwise (a new or
    partial store, another version, another database, something that is no store): the caller then opens a
    :class:`~harness.store.Store`, which makes the tables or raises its error.
    """
    if not url.startswith("sqlite:///") or "?" in url:
        return None
    path = Path(url.removeprefix("sqlite:///"))
    if not path.is_file():
        return None
    try:
        conn = sqlite3.connect(path, isolation_level=None)  # BEGIN and COMMIT as sqlite_runs says
    except sqlite3.Error:
        return None
    try:
        conn.execute("PRAGMA busy_timeout=30000")  # as the Store's connections: wait for a writer's lock
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables >= TABLES or conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.close()
            return None
        found = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if found is None or found[0] != SCHEMA_VERSION:
            conn.close()
            return None
    except sqlite3.Error:
        conn.close()
        return None
    return SQLiteReader(url, conn)
