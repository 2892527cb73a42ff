"""Runs, their artifacts and logs as a report shows them: the baseline team, links, resource use, log tails.

An artifact is a file a run kept under ``HOME/artifacts/<task>/run-<id>/`` (``executed.ipynb``, ``log.txt``,
``output/<predictions file>``); links to them are relative to the report page, or under a published URL prefix.
"""

from __future__ import annotations

import html
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

import pandas as pd

from harness.spec import TaskSpec
from harness.store import ScoredRun
from harness.text import visible

__all__ = [
    "artifact_files",
    "artifact_link",
    "artifact_links_html",
    "find_baseline_team",
    "log_tail",
    "resource_table",
]

_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".zip", ".tar", ".ipynb")
#: Where a log splits into lines: after a carriage return (so what it would overwrite stays readable) and at \n.
_LOG_LINE_BREAK = re.compile(r"(?<=\r)(?!\n)|\r?\n")


def _stem(name: str) -> str:
    lowered = name.lower()
    for suffix in _ARCHIVE_SUFFIXES:
        if lowered.endswith(suffix):
            return name[: -len(suffix)]
    return name


def find_baseline_team(spec: TaskSpec, runs: Sequence[ScoredRun], override: str | None = None) -> str | None:
    """The team that stands for the task's baseline, to mark it in plots.

    Args:
        spec: the task; ``spec.baseline`` names the baseline submission (folder or archive).
        runs: the task's runs (any phase).
        override: a team name given by the judge; returned if some run belongs to it.

    Returns:
        ``override`` if it has runs; else the team of a run whose submission source is the spec's baseline (the
        same path, or the same name without archive suffix in a folder of the same name); else a team named
        ``baseline`` (any case); else ``None``.
    """
    teams = {run.team for run in runs}
    if override is not None:
        return override if override in teams else None
    baseline = spec.baseline_path
    if baseline is not None:
        for run in runs:
            if not run.source:
                continue
            source = Path(run.source)
            try:
                if source.resolve() == baseline:
                    return run.team
            except OSError:
                pass
            if _stem(source.name) == _stem(baseline.name) and source.parent.name == baseline.parent.name:
                return run.team
    return next((team for team in sorted(teams) if team.lower() == "baseline"), None)


def artifact_link(
    path: Path, *, reports_dir: Path | None = None, link_base: str | None = None, home: Path | None = None
) -> str:
    """A URL for one artifact file, as seen from a report page.

    Args:
        path: the artifact (absolute).
        reports_dir: folder of the report page; the link is relative to it when possible.
        link_base: URL prefix of published artifacts; used for artifacts under ``home``, joined with their path
            relative to ``home`` (``https://host/artifacts`` + ``/artifacts/task/run-3/log.txt``).
        home: the harness home the artifacts live in.

    Returns:
        A URL-quoted relative link, a ``link_base`` URL, or a ``file://`` URI.
    """
    path = Path(path).absolute()
    if link_base and home is not None and path.is_relative_to(Path(home).absolute()):
        rel = path.relative_to(Path(home).absolute()).as_posix()
        return f"{link_base.rstrip('/')}/{quote(rel)}"
    if reports_dir is not None:
        try:
            return quote(Path(os.path.relpath(path, Path(reports_dir).absolute())).as_posix())
        except ValueError:  # another drive
            pass
    return path.as_uri()


def artifact_files(run: ScoredRun, predictions_file: str) -> dict[str, Path]:
    """The run's artifacts that exist: ``notebook``, ``log``, ``predictions``."""
    if not run.artifacts_dir:
        return {}
    base = Path(run.artifacts_dir)
    candidates = {
        "notebook": base / "executed.ipynb",
        "log": base / "log.txt",
        "predictions": base / "output" / predictions_file,
    }
    return {name: path for name, path in candidates.items() if path.is_file()}


def artifact_links_html(
    runs: Sequence[ScoredRun],
    *,
    predictions_file: str = "predictions.csv",
    reports_dir: Path | None = None,
    link_base: str | None = None,
    home: Path | None = None,
) -> str:
    """An HTML table linking each run's executed notebook, log and predictions (see :func:`artifact_link`).

    Every team-written string is made visible (:func:`harness.text.visible`) and HTML-escaped. Columns: team, run,
    status, submitted (UTC), notebook, log, predictions.
    """
    rows = []
    for run in runs:
        files = artifact_files(run, predictions_file)
        cells = [
            html.escape(visible(run.team, keep="")),
            str(run.run_id),
            html.escape(visible(run.status, keep="")),
            run.submitted_at.strftime("%Y-%m-%d %H:%M"),
        ]
        for name, label in (("notebook", "executed.ipynb"), ("log", "log.txt"), ("predictions", predictions_file)):
            if name in files:
                url = artifact_link(files[name], reports_dir=reports_dir, link_base=link_base, home=home)
                cells.append(f'<a href="{html.escape(url, quote=True)}">{html.escape(label)}</a>')
            else:
                cells.append("—")
        rows.append("<tr>" + "".join(f'<td style="text-align: left">{c}</td>' for c in cells) + "</tr>")
    names = ("team", "run", "status", "submitted (UTC)", "notebook", "log", "predictions")
    head = "".join(f'<th style="text-align: left">{name}</th>' for name in names)
    return f'<table class="harness-artifacts"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def resource_table(runs: Sequence[ScoredRun], spec: TaskSpec) -> pd.DataFrame:
    """Each run's resource use against the limits it ran under.

    The limits come from the run's provenance (``limits``), else from the spec.

    Returns:
        One row per run, in the given order. Columns: ``run_id`` (int64), ``submitted_at`` (datetime64[ns, UTC]),
        ``status`` (object), ``duration_s``, ``time_limit_s``, ``time_used_pct``, ``peak_memory_mb``,
        ``memory_limit_mb``, ``memory_used_pct`` (float64; NaN when unknown). Percentages are of the limit.
    """
    rows = []
    for run in runs:
        limits = run.provenance.get("limits") or {}
        time_limit = float(limits.get("time_s", spec.limits.time_s))
        memory_limit = float(limits.get("memory_mb", spec.limits.memory_mb))
        duration = float(run.duration_s) if run.duration_s is not None else math.nan
        memory = float(run.peak_memory_mb) if run.peak_memory_mb is not None else math.nan
        rows.append(
            {
                "run_id": run.run_id,
                "submitted_at": pd.Timestamp(run.submitted_at),
                "status": run.status,
                "duration_s": duration,
                "time_limit_s": time_limit,
                "time_used_pct": 100.0 * duration / time_limit,
                "peak_memory_mb": memory,
                "memory_limit_mb": memory_limit,
                "memory_used_pct": 100.0 * memory / memory_limit,
            }
        )
    columns = [
        "run_id",
        "submitted_at",
        "status",
        "duration_s",
        "time_limit_s",
        "time_used_pct",
        "peak_memory_mb",
        "memory_limit_mb",
        "memory_used_pct",
    ]
    df = pd.DataFrame(rows, columns=columns)
    df["run_id"] = df["run_id"].astype("int64")
    df["submitted_at"] = pd.to_datetime(df["submitted_at"], utc=True).astype("datetime64[ns, UTC]")
    for column in columns[3:]:
        df[column] = df[column].astype("float64")
    return df


def log_tail(path: str | Path, lines: int = 30, *, max_bytes: int = 65536) -> str:
    """The last ``lines`` lines of a log file, made visible; ``""`` if the file does not exist.

    Control characters are shown as escapes (:func:`harness.text.visible`): an ANSI sequence as ``\x1b[31m``, a
    backspace as ``\x08``. A carriage return that is not part of ``\r\n`` shows as ``\r`` and ends its line, so
    both what was written and what would have overwritten it are read. Tabs are kept.

    Args:
        path: the log (``log.txt`` of a run's artifacts).
        lines: how many lines to keep.
        max_bytes: read at most this many bytes from the end (bytes), so a huge log costs little.
    """
    path = Path(path)
    if not path.is_file():
        return ""
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - max_bytes))
        data = fh.read()
    text = data.decode("utf-8", errors="replace")
    if text.endswith("\n"):
        text = text[:-1]
    kept = _LOG_LINE_BREAK.split(text)[-lines:] if lines > 0 and text else []
    return "\n".join(visible(line, keep="\t") for line in kept)
