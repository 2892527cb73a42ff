"""What ``harness task validate`` found: one :class:`Check` per step and the scores (:class:`TaskValidationReport`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = ["Check", "CheckStatus", "TaskValidationReport"]

CheckStatus = Literal["pass", "fail", "warn", "skip"]


@dataclass
class Check:
    """One check of :func:`validate_task`.

    Attributes:
        name: what was checked (``"reference (test)"``).
        status: ``pass``, ``fail`` (the task is not sound), ``warn`` (worth a look) or ``skip`` (could not run).
        detail: what was found, or what to fix.
    """

    name: str
    status: CheckStatus
    detail: str = ""


@dataclass
class TaskValidationReport:
    """What :func:`validate_task` found.

    Attributes:
        task_dir: the task folder as given.
        task_id: the spec's id (``None`` when the spec did not load).
        checks: every check in the order run.
        scores: ``{label: {split: {metric: value}}}``, e.g. ``{"reference (validation)": {"validation":
            {"mae": 0.0, ...}}, "baseline (validation)": {...}}``.
        metrics: ``[(name, label, precision), ...]`` in the spec's order, for rendering.
    """

    task_dir: Path
    task_id: str | None = None
    checks: list[Check] = field(default_factory=list)
    scores: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    metrics: list[tuple[str, str, int]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no check failed (warnings and skips do not fail a task)."""
        return not any(c.status == "fail" for c in self.checks)

    def add(self, name: str, status: CheckStatus, detail: str = "") -> Check:
        """Append a check and return it."""
        check = Check(name, status, detail)
        self.checks.append(check)
        return check

    def render(self) -> Any:
        """A rich renderable: the checks table, the scores table and a verdict line."""
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        style = {"pass": "green", "fail": "bold red", "warn": "yellow", "skip": "yellow"}
        checks = Table(title=f"harness task validate {self.task_id or self.task_dir}", title_justify="left")
        checks.add_column("check")
        checks.add_column("result")
        checks.add_column("detail", overflow="fold")
        for check in self.checks:
            checks.add_row(check.name, Text(check.status, style=style[check.status]), check.detail)
        parts: list[Any] = [checks]
        if self.scores:
            table = Table(title="scores", title_justify="left")
            table.add_column("run")
            table.add_column("split")
            for _, label, _ in self.metrics:
                table.add_column(label, justify="right")
            for run, splits in self.scores.items():
                for split, values in splits.items():
                    table.add_row(
                        run,
                        split,
                        *(
                            f"{values[name]:.{precision}f}" if name in values else "-"
                            for name, _, precision in self.metrics
                        ),
                    )
            parts.append(table)
        verdict = "task is sound" if self.ok else "task has problems: see the failed checks"
        parts.append(Text(verdict, style="bold green" if self.ok else "bold red"))
        return Group(*parts)

    def __str__(self) -> str:
        lines = [f"{c.status:5} {c.name}: {c.detail}" for c in self.checks]
        for run, splits in self.scores.items():
            for split, values in splits.items():
                lines.append(f"{run} [{split}] " + ", ".join(f"{k}={v:.6g}" for k, v in values.items()))
        return "\n".join(lines)
