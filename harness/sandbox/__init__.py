"""Sandboxes: run untrusted team code with limits. See :mod:`harness.sandbox.base` for the contract."""

from harness.sandbox.base import Limits, Mount, RunOutcome, RunRequest, RunResult, Sandbox

__all__ = ["Limits", "Mount", "RunOutcome", "RunRequest", "RunResult", "Sandbox"]
