"""The results store: tasks, teams, submissions, runs and scores on SQLAlchemy.

:mod:`harness.store.results` holds the :class:`Store` (what the rest of the harness calls);
:mod:`harness.store.reading` its read view :class:`ScoredRun` and the SQLite read path without SQLAlchemy;
:mod:`harness.store.schema` holds the tables. The names below are the package's API. They are loaded when first
used (PEP 562), so a caller that only reads a SQLite store (``harness leaderboard``) never imports SQLAlchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.lazy import lazy_names
from harness.status import FINAL_STATUSES, STATUSES, Status

if TYPE_CHECKING:
    from harness.store.reading import SCHEMA_VERSION, ScoredRun, default_home, resolve_db_url
    from harness.store.rescored import record_rescored, run_by_id
    from harness.store.results import LEASE_STALE_S, NewSubmission, Plan, Store, dumps_provenance
    from harness.store.schema import LeaseRow, MetaRow, RunRow, ScoreRow, SubmissionRow, TaskRow, TeamRow

#: Where each lazily loaded name lives.
_HOMES = {
    **dict.fromkeys(("SCHEMA_VERSION", "ScoredRun", "default_home", "resolve_db_url"), "reading"),
    **dict.fromkeys(("record_rescored", "run_by_id"), "rescored"),
    **dict.fromkeys(("LEASE_STALE_S", "NewSubmission", "Plan", "Store", "dumps_provenance"), "results"),
    **dict.fromkeys(("LeaseRow", "MetaRow", "RunRow", "ScoreRow", "SubmissionRow", "TaskRow", "TeamRow"), "schema"),
}


__getattr__ = lazy_names(__name__, _HOMES)


__all__ = [
    "FINAL_STATUSES",
    "LEASE_STALE_S",
    "SCHEMA_VERSION",
    "STATUSES",
    "LeaseRow",
    "MetaRow",
    "NewSubmission",
    "Plan",
    "RunRow",
    "ScoreRow",
    "ScoredRun",
    "Status",
    "Store",
    "SubmissionRow",
    "TaskRow",
    "TeamRow",
    "default_home",
    "dumps_provenance",
    "record_rescored",
    "resolve_db_url",
    "run_by_id",
]
