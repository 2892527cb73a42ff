"""The error a judges' report raises when a notebook cannot be executed, exported or read back."""

from __future__ import annotations

from harness.errors import HarnessError

__all__ = ["ReportError"]


class ReportError(HarnessError):
    """A report notebook could not be executed or exported.

    Args:
        message: what failed and where, e.g. ``"leaderboard.ipynb failed at In [5] (cell 7 of 16 ...)"``.
        notebook: the executed notebook written despite the failure, or ``""``.
        cell_index: 0-based index of the failing cell in that saved notebook, or ``None``.
    """

    def __init__(self, message: str, notebook: str = "", cell_index: int | None = None) -> None:
        super().__init__(message)
        self.notebook = notebook
        self.cell_index = cell_index
        self.args = (message, notebook, cell_index)
