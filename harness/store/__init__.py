"""The results store: tasks, teams, submissions, runs and scores on SQLAlchemy.

:mod:`harness.store.results` holds the :class:`Store` (what the rest of the harness calls) and its read view
:class:`ScoredRun`; :mod:`harness.store.schema` holds the tables. The names below are the package's API.
"""

from harness.status import FINAL_STATUSES, STATUSES, Status
from harness.store.rescored import record_rescored, run_by_id
from harness.store.results import (
    LEASE_STALE_S,
    NewSubmission,
    Plan,
    ScoredRun,
    Store,
    default_home,
    dumps_provenance,
    resolve_db_url,
)
from harness.store.schema import SCHEMA_VERSION, LeaseRow, MetaRow, RunRow, ScoreRow, SubmissionRow, TaskRow, TeamRow

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
