"""Hackathon evaluation harness: task specs, sandboxed runs, evaluators and honest metric tables.

The public API is small (see ``__all__``); everything else is reached through its module. Nothing heavy happens at
import: submodules load when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.errors import HarnessError
from harness.version import __version__

if TYPE_CHECKING:
    from harness.spec import TaskSpec, load_spec

__all__ = [
    "HarnessError",
    "TaskSpec",
    "__version__",
    "check",
    "evaluate_many",
    "leaderboard",
    "load_spec",
    "write_report",
]


def __getattr__(name: str) -> Any:
    # Lazy public functions: importing harness stays cheap for the CLI and for team notebooks.
    if name in ("TaskSpec", "load_spec"):  # pydantic: about 0.35 s of every command's start when imported here
        import harness.spec

        return getattr(harness.spec, name)
    if name == "check":
        from harness.selfcheck import check

        return check
    if name == "evaluate_many":
        from harness.scheduling import evaluate_many

        return evaluate_many
    if name == "leaderboard":
        from harness.ranking import leaderboard

        return leaderboard
    if name == "write_report":
        from harness.report import write_report

        return write_report
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
