"""Run statuses: one enum for the store, the pipeline, the scheduler, the leaderboard, the self-check and reports.

:class:`Status` is a :class:`enum.StrEnum`, so a status compares equal to its text (``Status.SUCCEEDED ==
"succeeded"``), is stored and exported as that text, and reads back from the store with ``Status(text)``.
"""

from __future__ import annotations

import enum

__all__ = ["FINAL_STATUSES", "STATUSES", "Status"]


class Status(enum.StrEnum):
    """What became of one run (the statuses of DESIGN.md, plus ``rejected`` and ``interrupted``).

    Only ``HARNESS_ERROR`` means the harness itself is at fault. ``REJECTED``: refused at the door (unsafe archive,
    invalid notebook, no ``parameters`` cell) and never ran. ``INTERRUPTED``: history of a run whose coordinator
    died; it is never active, and its submission is evaluated again.
    """

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"  # scored: the only status that ranks
    FAILED = "failed"  # the team's code failed (exit code, exception, dead kernel, output area full)
    TIMED_OUT = "timed_out"  # stopped from outside at the time limit
    OUT_OF_MEMORY = "out_of_memory"  # killed at the memory limit
    REJECTED = "rejected"
    INVALID_OUTPUT = "invalid_output"  # ran, but its predictions break the task's schema
    EVALUATOR_ERROR = "evaluator_error"  # the task's evaluator failed (the task author's fault)
    HARNESS_ERROR = "harness_error"
    INTERRUPTED = "interrupted"

    @property
    def is_final(self) -> bool:
        """Whether a finished run can have this status (it is then its submission's active result)."""
        return self in FINAL_STATUSES


#: Every status, in the order above (as text; the store's column holds these).
STATUSES: tuple[str, ...] = tuple(status.value for status in Status)
#: Statuses a finished run can have.
FINAL_STATUSES: frozenset[Status] = frozenset(Status) - {Status.QUEUED, Status.RUNNING, Status.INTERRUPTED}
